"""Does a codec's gradient point uphill on the real codec? The rule ``check-codec`` applies against
gradient masking, at adapter-writing time.

Every attack follows the gradient of the codec's differentiable pass; what is gated is the real round
trip. If the two disagree (a rounding without straight-through, a detached branch, an integer path,
a proxy unlike the coder), the attacks climb the wrong hill and the codec looks robust (Athalye,
Carlini & Wagner, ICML 2018). The test, per objective of :data:`OBJECTIVES`: take one signed step of
:data:`STEP` (whole 8-bit levels) along the gradient of the objective, and :data:`RANDOM_DIRECTIONS`
steps of the same size along random signs; measure the objective on the **real** round trip of each
8-bit image. The gradient's step must raise the real objective more than the best random step does
(on the mean over the test images). A gradient that is zero everywhere, or whose step does worse
than every random one, fails. A step within the random steps' spread is a warning, not a failure:
where the real objective barely depends on the direction at this step (a near-lossless quantiser
and the reconstruction error, measured: the example codec at its finest step), the gradient cannot
beat chance, and the run's own masking checks (the noise baseline, the query attack, the other
codecs' x') judge the codec on what the attacks found.
"""

from __future__ import annotations

OBJECTIVES = ("recon_error", "bitrate")
STEP = 4 / 255
RANDOM_DIRECTIONS = 4
CAUSES = "a rounding without straight-through, a detached branch or an integer path in the differentiable pass"


def _real(codec, x, objective: str):
    """The objective per image on the real round trip of the 8-bit ``x``."""
    rt = codec.roundtrip(x)
    if objective == "bitrate":
        return rt.bpp.double()
    return (rt.x_hat.to(x) - x).double().pow(2).flatten(1).mean(dim=1).cpu()


def measure(codec, x) -> dict:
    """{objective: (gain along the gradient, [gain along each random direction], |gradient|)} per image."""
    import torch

    from ...attacks.objectives import evaluate_objective
    from ..base import round_to_8bit

    x = round_to_8bit(x)
    out = {}
    signs = torch.Generator().manual_seed(0)
    for objective in OBJECTIVES:
        xa = x.clone().requires_grad_(True)
        fwd = codec.forward(xa, proxy="noise", generator=torch.Generator(device=x.device).manual_seed(0))
        value = evaluate_objective(objective, "rgb", x, xa, None, fwd.x_hat, fwd.bpp)
        if value.requires_grad:
            (grad,) = torch.autograd.grad(value.sum(), xa)
        else:  # no path back to the input at all
            grad = torch.zeros_like(xa)
        base = _real(codec, x, objective)
        along = _real(codec, round_to_8bit(x + STEP * grad.sign()), objective) - base
        randoms = []
        for _ in range(RANDOM_DIRECTIONS):
            direction = (torch.randint(0, 2, x.shape, generator=signs) * 2 - 1).to(x)
            randoms.append((_real(codec, round_to_8bit(x + STEP * direction), objective) - base).tolist())
        out[objective] = (along.tolist(), randoms, float(grad.abs().sum()))
    return out


def judge(measured: dict) -> tuple[bool, str, str]:
    """(passed, detail, warning) of :func:`measure`'s numbers."""
    problems, parts, ties = [], [], []
    for objective, (along, randoms, norm) in measured.items():
        mean_along = sum(along) / len(along)
        gains = [sum(r) / len(r) for r in randoms]
        parts.append(
            f"{objective}: real gain {mean_along:.4g} along the gradient, {min(gains):.4g} to {max(gains):.4g} "
            f"along {len(randoms)} random directions"
        )
        if not any(along) and not any(v for r in randoms for v in r):
            parts[-1] += " (the real objective responds to no step: not judged)"
        elif norm == 0:
            problems.append(f"no gradient reaches the input through {objective} ({CAUSES})")
        elif not mean_along >= min(gains):
            problems.append(
                f"the {objective} gradient does not point uphill on the real codec: the differentiable "
                f"pass disagrees with the coder ({CAUSES}, or a proxy unlike the real rounding); attacks "
                "would climb the wrong hill and the codec would look robust (gradient masking)"
            )
        elif not mean_along > max(gains):
            ties.append(objective)
    want = f"(want the gradient's {STEP * 255:g}/255 step to raise the real objective more than any random one)"
    detail = "; ".join(parts) + " " + want
    warning = (
        f"the {', '.join(ties)} gradient does no better than random directions on the real codec (within their "
        "spread): the real objective barely depends on the direction at this step, or the differentiable pass "
        "misleads the attacks; the run's masking checks judge it (docs/method.md#what-a-pass-means)"
        if ties
        else ""
    )
    return not problems, ("; ".join(problems) + " -- " + detail) if problems else detail, warning
