"""Shared machinery of all attacks: objective, gradient, seeding, projection.

A NaN or infinite objective or gradient never weakens an attack in silence (a NaN step is
never "better", so the attack would quietly return its start): :meth:`Attack.gradient` and
:func:`~pytest_nicrobust.attacks.constraints.adam_ascent` raise :class:`AttackNonFiniteError`,
naming the attack, the step and the images, and the batch is reported as not measured.
"""

from __future__ import annotations

import torch

from .. import CodecError
from .objectives import evaluate_objective
from .presets import DEFAULT_OBJECTIVE, PROXIES, USES_REFERENCE, parse_objective


class AttackNonFiniteError(CodecError):
    """The objective or its gradient was NaN or infinite during an attack.

    ``images``: every image of the batch (its attack stopped; none of them is measured with a
    weaker x'); the message names the positions that went non-finite and the step.
    """

    def __init__(self, message: str, images: list[int]):
        super().__init__(message)
        self.images = images


def check_finite_step(what: str, step: int, tensor: torch.Tensor) -> None:
    """Raise :class:`AttackNonFiniteError` when ``tensor`` (batch first) holds NaN or infinity."""
    flat = tensor.detach().reshape(tensor.shape[0], -1) if tensor.ndim else tensor.detach().reshape(1, 1)
    bad = (~torch.isfinite(flat)).any(dim=1)
    if bool(bad.any()):
        where = bad.nonzero().flatten().tolist()
        raise AttackNonFiniteError(
            f"the {what} is NaN or infinite at step {step} for image(s) {where} of the "
            f"batch; its attack stopped (no weaker x' is measured)",
            list(range(flat.shape[0])),
        )


class Attack:
    """Base class. Subclasses implement :meth:`perturb` (x -> x_adv, batched).

    Arguments common to every attack:
        codec: a :class:`~pytest_nicrobust.codecs.base.Codec`.
        objective: ``"recon_error"`` (default, aligned with ΔPSNR) etc., optionally ``":ycbcr"`` / ``":luma"``.
        proxy: quantisation proxy for gradients, ``"noise"`` or ``"ste"``.
        seed: every random draw of the attack (start, noise proxy) comes from it.
    """

    name = "attack"
    warm_starts = False  # whether it can start from a given x' (a budget sweep's previous point), see warm_start

    def __init__(self, codec, *, objective: str = DEFAULT_OBJECTIVE, proxy: str = "noise", seed: int = 0):
        self.codec = codec
        self.objective, self.color = parse_objective(objective)
        if proxy not in PROXIES:
            raise ValueError(f"unknown proxy {proxy!r}; choose from {PROXIES}")
        self.proxy = proxy
        self.seed = int(seed)
        self.generator: torch.Generator | None = None
        self.trace: list[torch.Tensor] = []  # the objective of every image at each step (see record)
        self.warm_start: torch.Tensor | None = None  # an x' to start from (projected into the budget), if warm_starts

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images (N,3,H,W), got shape {tuple(x.shape)}")
        self.generator = torch.Generator(device=x.device).manual_seed(self.seed)
        self.steps_done = 0
        self.trace = []
        try:
            with torch.enable_grad():
                x_adv = self.perturb(x.detach())
        except AttackNonFiniteError as exc:
            raise AttackNonFiniteError(f"attack {self.name} (objective {self.objective}): {exc}", exc.images) from None
        return x_adv.detach().clamp(0, 1).to(x.dtype)

    def perturb(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def record(self, value: torch.Tensor) -> None:
        """Keep the objective of each image at this step (the attack's loss curve, judged by
        :mod:`pytest_nicrobust.attacks.convergence`)."""
        self.trace.append(value.detach().double().cpu().reshape(-1))

    def image_traces(self) -> list[list[float]]:
        """The objective per step of each image of the last call (empty for an attack without steps)."""
        if not self.trace:
            return []
        return [[float(step[i]) for step in self.trace] for i in range(self.trace[0].numel())]

    # -- helpers for subclasses -------------------------------------------------

    @property
    def needs_reference(self) -> bool:
        return self.objective in USES_REFERENCE

    @torch.no_grad()
    def reference(self, x: torch.Tensor) -> torch.Tensor | None:
        """C(x) with rounded latents, the target the shift objectives move away from (None for the
        objectives that do not use it: one forward pass saved)."""
        return self.codec.forward(x, proxy="ste").x_hat if self.needs_reference else None

    def objective_value(self, x, x_adv, rec_clean) -> torch.Tensor:
        views = self.codec.eot_views(self.generator)
        if views is None:
            return self._objective_on(self.codec, x, x_adv, rec_clean)
        # EOT: the mean over random views of the codec, each against its own clean C(x)
        values = []
        for view in views:
            reference = None
            if self.needs_reference:
                with torch.no_grad():
                    reference = view.forward(x, proxy="ste").x_hat
            values.append(self._objective_on(view, x, x_adv, reference))
        return torch.stack(values).mean(dim=0)

    def _objective_on(self, codec, x, x_adv, rec_clean) -> torch.Tensor:
        out = codec.forward(x_adv, proxy=self.proxy, generator=self.generator)
        return evaluate_objective(self.objective, self.color, x, x_adv, rec_clean, out.x_hat, out.bpp)

    def gradient(self, x, x_adv, rec_clean) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective per image, d objective / d x_adv)."""
        x_adv = x_adv.detach().requires_grad_(True)
        value = self.objective_value(x, x_adv, rec_clean)
        step = getattr(self, "steps_done", 0)
        check_finite_step("objective", step, value if value.ndim else value.reshape(1))
        self.record(value)
        if value.requires_grad:
            (grad,) = torch.autograd.grad(value.sum(), x_adv)
        else:  # no path from the objective back to the input: a zero gradient (the masking checks name it)
            grad = torch.zeros_like(x_adv)
        check_finite_step("objective's gradient", step, grad)
        self.steps_done = step + 1
        return value.detach(), grad

    def budget_violation(self, x: torch.Tensor, x_adv: torch.Tensor) -> str | None:
        """None when the 8-bit ``x_adv`` (N,3,H,W) is within this attack's budget around ``x``,
        else what is wrong (checked on cached images, which anyone could have replaced)."""
        return None

    def uniform(self, like: torch.Tensor, low: float, high: float) -> torch.Tensor:
        r = torch.rand(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)
        return low + (high - low) * r


def project_linf(x_adv, x, eps):
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)


# Rounding x' to 8 bits may move a pixel by half a level beyond a budget met before rounding.
ROUNDING = 0.5 / 255 + 1e-6


def on_8bit_grid(x) -> bool:
    return bool(torch.equal(torch.round(x * 255) / 255, x))


def linf_8bit(x, x_adv, eps):
    """x' on the 8-bit grid within ‖x' − x‖∞ ≤ eps, when x is on it (else x' unchanged).

    Rounding a projected x' can add half a level (ε = 0.03 is 7.65 levels: 8 after rounding);
    clipping the rounded change to whole levels keeps the budget on the image that is delivered.
    """
    if not on_8bit_grid(x):
        return x_adv
    levels = float(int(eps * 255 + 1e-6))
    step = torch.round((x_adv - x) * 255).clamp(-levels, levels)
    return (torch.round(x * 255) + step).clamp(0, 255) / 255


def linf_violation(x, x_adv, eps) -> str | None:
    worst = (x_adv - x).abs().max().item()
    return (
        None if worst <= eps + ROUNDING else f"changes a pixel by {worst * 255:.1f}/255 > L∞ budget {eps * 255:.2f}/255"
    )


def rms_violation(x, x_adv, budget) -> str | None:
    worst = (x_adv.double() - x.double()).pow(2).flatten(1).mean(dim=1).sqrt().max().item()
    return None if worst <= budget + ROUNDING else f"has RMSE {worst * 255:.2f}/255 > budget {budget * 255:.2f}/255"
