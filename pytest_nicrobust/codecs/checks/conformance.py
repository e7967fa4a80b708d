"""Does a codec keep the contract of :mod:`pytest_nicrobust.codecs.base`? Check it before trusting its numbers.

``pytest_nicrobust.codecs.check(codec)`` returns a list of :class:`Check`, one per property (the
command line is ``python -m pytest_nicrobust check-codec``, :mod:`pytest_nicrobust.cli.check_codec`).
Photos bundled with scikit-image, cropped to an odd size, are the test images.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

RECON_MIN_PSNR = 30.0  # dB between the differentiable (ste) and the decoded reconstruction
RANGE_MARGIN = 0.5  # a differentiable reconstruction may leave [0, 1] a little (0-255 would not pass)
RANDOM_RANGE = (-2.0, 3.0)  # random weights: only the units are judged (a warning beyond [0, 1] ± RANGE_MARGIN)
TIME_LIMIT_S = 120.0  # a property that takes longer is a failure (an entropy coder that hangs)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    warning: str = ""  # a WARN line under the property's line; not a failure

    def line(self) -> str:
        text = f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"
        return text + (f"\nWARN  {self.name}: {self.warning}" if self.warning else "")


def sample_images(size=(75, 101), n=2):
    """``n`` photos as (n, 3, H, W), an odd size so that padding and cropping are exercised."""
    from ...datasets import BUNDLED, dataset_folder, load_dataset, to_tensor

    images = load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), n, max(size))
    x = to_tensor(images)
    top, left = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
    return x[:, :, top : top + size[0], left : left + size[1]].contiguous()


def _psnr(a, b) -> float:
    mse = float((a.double() - b.double()).pow(2).mean())
    return 100.0 if mse == 0 else 10 * math.log10(1 / mse)


PROPERTIES = (
    "forward: shapes, range, device",
    "gradients reach the input (noise proxy)",
    "gradients reach the input (ste proxy)",
    "noise proxy follows the generator",
    "model stays in eval mode",
    "roundtrip: shapes and bytes per image",
    "real bytes decode the same twice",
    "differentiable reconstruction close to the decoded one",
    "estimated rate tracks the real bitstream",
    "the gradient points uphill on the real codec",
    "odd sizes padded and cropped back",
    "non-finite values are caught",
    "identity pins weights and code (cache key)",
)
SAME_BUILD = "built twice, the same codec"  # with ``twin``: what every xdist worker builds is the same


def check(
    codec,
    size=(75, 101),
    n=2,
    time_limit_s: float = TIME_LIMIT_S,
    twin=None,
    on_start=None,
    on_result=None,
) -> list[Check]:
    """Every property of the contract, each a :class:`Check` (a failing one does not stop the others).
    ``time_limit_s``: what one property may take (the rate property, four times as much). ``twin``:
    the same codec built a second time (:data:`SAME_BUILD` compares the two). ``on_start(name)`` and
    ``on_result(check)`` are called as each property starts and ends (``check-codec`` streams them)."""
    import torch

    from ...timeguard import time_limit

    x = sample_images(size, n).to(codec.device)
    h, w = size
    results: list[Check] = []

    def run(name, fn, limit=time_limit_s):
        if on_start:
            on_start(name)
        warning = ""
        try:
            with time_limit(limit, f"check {name!r}"):
                passed, detail, *more = fn()  # (passed, detail) or (passed, detail, warning)
            warning = more[0] if more else ""
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the property failed by raising, SystemExit and GeneratorExit included
            passed, detail = False, f"raised {type(exc).__name__}: {str(exc)[:300]}"
        results.append(Check(name, passed, detail, warning))
        if on_result:
            on_result(results[-1])

    def forward_shapes():
        out = codec.forward(x, proxy="ste")
        ok_shape = tuple(out.x_hat.shape) == (n, 3, h, w) and tuple(out.bpp.shape) == (n,)
        finite = bool(torch.isfinite(out.x_hat).all() and torch.isfinite(out.bpp).all())
        lo, hi = float(out.x_hat.min()), float(out.x_hat.max())
        in_range = lo >= -RANGE_MARGIN and hi <= 1 + RANGE_MARGIN
        warning = ""
        if (
            not in_range
            and getattr(getattr(codec, "info", None), "random_init", False)
            and RANDOM_RANGE[0] <= lo
            and hi <= RANDOM_RANGE[1]
        ):
            in_range, warning = (
                True,
                (
                    f"random weights: x_hat reaches [{lo:.3f}, {hi:.3f}]; judged only for units "
                    f"(within [{RANDOM_RANGE[0]:g}, {RANDOM_RANGE[1]:g}])"
                ),
            )
        on_device = out.x_hat.device.type == codec.device.type
        ok = ok_shape and finite and in_range and on_device and bool((out.bpp > 0).all())
        return (
            ok,
            (
                f"x_hat {tuple(out.x_hat.shape)} in [{lo:.3f}, {hi:.3f}], bpp {tuple(out.bpp.shape)} "
                f"{[round(v, 4) for v in out.bpp.tolist()]}, on {out.x_hat.device.type}"
                f" (want ({n}, 3, {h}, {w}) within [0, 1] ± {RANGE_MARGIN}, ({n},) positive, finite)"
            ),
            warning,
        )

    def gradients(proxy):
        def fn():
            xa = x.clone().requires_grad_(True)
            out = codec.forward(xa, proxy=proxy, generator=torch.Generator(device=x.device).manual_seed(0))
            (grad,) = torch.autograd.grad((out.x_hat - x).pow(2).mean() + 1e-3 * out.bpp.sum(), xa)
            norm = float(grad.abs().sum())
            ok = bool(torch.isfinite(grad).all()) and norm > 0
            return ok, f"|grad| {norm:.3g}, finite {bool(torch.isfinite(grad).all())} (want finite and not zero)"

        return fn

    def noise_seeded():
        def once(seed):
            g = torch.Generator(device=x.device).manual_seed(seed)
            return codec.forward(x, proxy="noise", generator=g).bpp

        a, b, c = once(1), once(1), once(2)
        ok = torch.equal(a, b) and not torch.equal(a, c)
        return (
            ok,
            "same generator state gives the same noise, another state another"
            if ok
            else f"bpp {a.tolist()} / {b.tolist()} / {c.tolist()} for seeds 1, 1, 2 (want equal, equal, different)",
        )

    def eval_mode():
        modules = [m for m in vars(codec).values() if isinstance(m, torch.nn.Module)]
        training = [type(m).__name__ for m in modules for sub in m.modules() if sub.training]
        return not training, "no module in training mode" if not training else f"in training mode: {training[:3]}"

    def roundtrip():
        rt = codec.roundtrip(x)
        ok = (
            tuple(rt.x_hat.shape) == (n, 3, h, w)
            and len(rt.nbytes) == n
            and all(isinstance(b, int) and b > 0 for b in rt.nbytes)
        )
        return ok, f"x_hat {tuple(rt.x_hat.shape)}, bytes {rt.nbytes}, bpp {[round(v, 4) for v in rt.bpp.tolist()]}"

    def deterministic():
        a, b = codec.roundtrip(x), codec.roundtrip(x)
        ok = torch.equal(a.x_hat, b.x_hat) and a.nbytes == b.nbytes
        return (
            ok,
            "two round trips: same bytes, same image"
            if ok
            else f"bytes {a.nbytes} then {b.nbytes}, max pixel difference {float((a.x_hat - b.x_hat).abs().max()):.4f}",
        )

    def recon_close():
        real = codec.roundtrip(x).x_hat
        proxy = codec.forward(x, proxy="ste").x_hat.clamp(0, 1)
        psnrs = [_psnr(proxy[i], real[i]) for i in range(n)]
        return min(psnrs) >= RECON_MIN_PSNR, (
            f"PSNR(differentiable, decoded) {[round(p, 1) for p in psnrs]} dB (want >= {RECON_MIN_PSNR:g})"
        )

    def rate_tracks():  # the rule and its tolerances: codecs/rate_tracking.py
        from . import rate_tracking

        return rate_tracking.judge(*rate_tracking.measure(codec, x))

    def uphill():  # the rule and its step: codecs/checks/uphill.py
        from . import uphill as rule

        return rule.judge(rule.measure(codec, x))

    def padding():
        multiple = getattr(codec, "multiple", None)
        ok_multiple = isinstance(multiple, int) and multiple >= 1
        one = x[:1, :, : h - 2, : w - 3]
        out, rt = codec.forward(one, proxy="ste"), codec.roundtrip(one)
        ok = ok_multiple and out.x_hat.shape[-2:] == one.shape[-2:] and rt.x_hat.shape[-2:] == one.shape[-2:]
        return ok, f"multiple {multiple!r}; {tuple(one.shape[-2:])} in, {tuple(rt.x_hat.shape[-2:])} out"

    def non_finite():
        from ... import CodecError

        bad = x.clone()
        bad[0, :, 3, 3] = float("nan")
        try:
            codec.roundtrip(bad)
        except CodecError as exc:
            return True, f"a NaN input raised {type(exc).__name__}"
        return False, "a NaN input went through roundtrip() silently (use the base class's roundtrip)"

    def identity():
        a, b = codec.identity(), codec.identity()
        json.dumps(a, sort_keys=True)
        pinned = any(k in a for k in ("weights_sha256", "code_sha256"))
        return a == b and pinned, f"{json.dumps(a, sort_keys=True, default=str)[:200]}"

    def same_build():
        a, b = codec.forward(x, proxy="ste"), twin.forward(x, proxy="ste")
        ra, rb = codec.roundtrip(x), twin.roundtrip(x)
        gap = float((a.x_hat - b.x_hat).abs().max())
        same = codec.identity() == twin.identity()
        ok = (
            same
            and gap == 0
            and torch.equal(a.bpp, b.bpp)
            and ra.nbytes == rb.nbytes
            and torch.equal(ra.x_hat, rb.x_hat)
        )
        if ok:
            return True, "a second build gives the same identity, reconstruction, rate and bytes"
        return False, (
            f"a second build differs: identity {'same' if same else 'differs'}, reconstruction by up to {gap:.4g}, "
            f"bytes {ra.nbytes} then {rb.nbytes}: the codec is built another way each time (random weights "
            "from an unseeded generator?), so every xdist worker would measure another codec"
        )

    checks = dict(
        zip(
            PROPERTIES,
            (
                forward_shapes,
                gradients("noise"),
                gradients("ste"),
                noise_seeded,
                eval_mode,
                roundtrip,
                deterministic,
                recon_close,
                rate_tracks,
                uphill,
                padding,
                non_finite,
                identity,
            ),
        )
    )
    for name, fn in checks.items():
        run(name, fn, time_limit_s * 4 if fn is rate_tracks else time_limit_s)  # the rate: 4 variants of each image
    if twin is not None:
        run(SAME_BUILD, same_build)
    return results
