"""Image quality metrics, bit-rate helpers and robustness deltas.

Inputs
------
Every full-reference metric takes two torch image batches ``a`` and ``b`` of
shape ``(N, 3, H, W)``, floating point, values in ``[0, 1]`` (a tolerance of
``1e-6`` is accepted on either side), same shape and device. Anything else
raises ``ValueError`` (``TypeError`` for non-tensors) naming the argument and
the problem. Every metric returns a ``float64`` tensor of shape ``(N,)``, one
value per image, on the device of the inputs. Images in a batch never
influence each other's scores.

Metrics
-------
``mse(a, b)``
    Mean over pixels and channels of ``(a - b)**2`` on the ``[0, 1]`` scale.
    Computed in float64. Differentiable.
``psnr(a, b, data_range=1.0)``
    ``10 * log10(data_range**2 / max(mse, MSE_FLOOR * data_range**2))``.
    ``MSE_FLOOR = 1e-10``, so identical images give ``PSNR_MAX_DB = 100`` dB
    instead of ``inf`` (finite values keep means, deltas and gradients
    usable). Differentiable (the gradient is zero at the cap).
``ms_ssim(a, b)``
    pytorch-msssim ``ms_ssim`` (5 scales, Gaussian window sigma 1.5,
    ``data_range=1``, ``size_average=False``) on RGB. pytorch-msssim requires
    ``min(H, W) > (win_size - 1) * 2**4``; the window is the largest odd
    ``win_size <= 11`` meeting that, i.e. 11 for ``min(H, W) >= 161``, 9 for
    129-160, 7 for 97-128, 5 for 65-96, 3 for 33-64. Images with a side
    below ``MS_SSIM_MIN_SIDE = 33`` raise ``ValueError``. Computed in the input
    dtype (at least float32), returned as float64. Differentiable.
``vmaf(reference, distorted)``
    VMAF ``vmaf_v0.6.1`` (vmaf-torch, model parameters compiled into the
    package, nothing is downloaded), one frame per image, luma only, motion
    feature 0 (as libvmaf for a single frame), score clipped to [0, 100] (as
    libvmaf does for this model). Luma is 8-bit BT.601 limited range, exactly
    as ffmpeg's ``format=yuv420p`` produces it from 8-bit RGB: RGB is
    quantised to ``round(255 * x)``, then ``Y ~= 16 + (65.481 R + 128.553 G +
    24.966 B) / 255`` with swscale's fixed-point arithmetic (see
    ``rgb_to_luma``). vmaf-torch runs in float64 (float32 on MPS): in float32
    its VIF loses precision (0.38 VMAF off libvmaf on one JPEG pair).
    Identical images score ``VMAF_IDENTICAL`` (~97.43), not
    100. Not differentiable. Both sides must be at least ``VMAF_MIN_SIDE``.
    Agreement with libvmaf: see ``docs/vmaf.md``.

Bit rate
--------
``bpp_from_bytes(nbytes, height, width) = 8 * nbytes / (H * W)`` per image.
``bpp_estimate(likelihoods, height, width) = sum over all likelihood tensors
of -log2(p), per image, / (H * W)``. Differentiable.
``bitrate_increase(bpp_clean, bpp_adv) = bpp_adv / bpp_clean - 1``.

Deltas (positive = the attack hurt)
-----------------------------------
With ``x`` the clean input, ``x'`` the adversarial input and ``C`` the codec
(compress + decompress):

``delta(m, clean_score, adv_score)``
    ``m(x, C(x)) - m(x', C(x'))`` for ``m`` in ``HIGHER_IS_BETTER`` (psnr,
    msssim, vmaf); ``MSE(x', C(x')) - MSE(x, C(x))`` for ``mse``.
``amplification(m, inputs_score, recon_score)``
    ``m(x, x') - m(C(x), C(x'))`` for higher-is-better metrics;
    ``MSE(C(x), C(x')) - MSE(x, x')`` for ``mse``. Positive means the codec
    amplified the input perturbation.

Metric names are case-insensitive and ``-``/``_`` are ignored, so
``"MS-SSIM"`` and ``"ms_ssim"`` mean ``"msssim"``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping

import torch
from pytorch_msssim import ms_ssim as _pm_ms_ssim

from .registry import MIN_SIDE, ROWS

__all__ = [
    "FULL_REFERENCE",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "MSE_FLOOR",
    "MS_SSIM_MIN_SIDE",
    "PSNR_MAX_DB",
    "VMAF_IDENTICAL",
    "VMAF_MIN_SIDE",
    "amplification",
    "bitrate_increase",
    "bpp_estimate",
    "bpp_from_bytes",
    "canonical_metric_name",
    "delta",
    "ms_ssim",
    "ms_ssim_window_size",
    "mse",
    "psnr",
    "rgb_to_luma",
    "vmaf",
]

MSE_FLOOR = 1e-10
PSNR_MAX_DB = 100.0  # = 10 * log10(1 / MSE_FLOOR)
RANGE_TOL = 1e-6

_MS_SSIM_LEVELS = 5
_MS_SSIM_MAX_WIN = 11
# pytorch-msssim asserts min(H, W) > (win_size - 1) * 2 ** (levels - 1).
MS_SSIM_MIN_SIDE = MIN_SIDE["msssim"]  # 33 = (3 - 1) * 2 ** (5 - 1) + 1

# vmaf-torch's ADM (4 DWT levels, ceil halving) reflect-pads its last level,
# which needs >= 2 px there: 16 px fails, 17 px works (17 -> 9 -> 5 -> 3 -> 2).
# libvmaf (ffmpeg) also fails at 16 px. Below ~64 px the two disagree by up to
# several VMAF points (border handling), see docs/vmaf.md.
VMAF_MIN_SIDE = MIN_SIDE["vmaf"]  # 17
VMAF_IDENTICAL = 97.42798  # vmaf_v0.6.1 score of an image against itself (motion 0)

Number = int | float


# --------------------------------------------------------------------------- #
# validation
# --------------------------------------------------------------------------- #
def _check_image(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{name} must have 4 dimensions (N, 3, H, W), got {x.ndim} dimensions with shape {tuple(x.shape)}"
        )
    if x.shape[1] != 3:
        raise ValueError(f"{name} must have 3 (RGB) channels in dim 1, got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor with values in [0, 1], got dtype {x.dtype}")
    with torch.no_grad():
        if torch.isnan(x).any():
            raise ValueError(f"{name} contains NaN values (shape {tuple(x.shape)})")
        lo = x.min().item()
        hi = x.max().item()
    if lo < -RANGE_TOL or hi > 1.0 + RANGE_TOL:
        raise ValueError(f"{name} values must lie in [0, 1], got min {lo:.6g} and max {hi:.6g}")


def _check_pair(a, b, name_a: str = "a", name_b: str = "b") -> None:
    _check_image(a, name_a)
    _check_image(b, name_b)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}")


# --------------------------------------------------------------------------- #
# full-reference metrics
# --------------------------------------------------------------------------- #
def _mse64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    diff = a.to(torch.float64) - b.to(torch.float64)
    return diff.square().flatten(1).mean(dim=1)


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error on the [0, 1] scale, float64 (N,). Differentiable."""
    _check_pair(a, b)
    return _mse64(a, b)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, float64 (N,), capped at ``PSNR_MAX_DB`` (100 dB).

    ``10 * log10(data_range**2 / max(mse, MSE_FLOOR * data_range**2))``;
    identical images give exactly 100 dB. Differentiable.
    """
    _check_pair(a, b)
    if not (isinstance(data_range, (int, float)) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range!r}")
    peak_sq = float(data_range) ** 2
    err = _mse64(a, b).clamp_min(MSE_FLOOR * peak_sq)
    return 10.0 * torch.log10(peak_sq / err)


def ms_ssim_window_size(height: int, width: int) -> int:
    """Gaussian window used by :func:`ms_ssim` for an image of this size.

    The largest odd ``win_size <= 11`` with ``min(H, W) > (win_size - 1) * 16``
    (pytorch-msssim's requirement for 5 scales). Raises ``ValueError`` when
    ``min(H, W) < MS_SSIM_MIN_SIDE`` (33).
    """
    side = min(int(height), int(width))
    factor = 2 ** (_MS_SSIM_LEVELS - 1)
    for win in range(_MS_SSIM_MAX_WIN, 2, -2):
        if side > (win - 1) * factor:
            return win
    raise ValueError(
        f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE}x{MS_SSIM_MIN_SIDE} pixels "
        f"(5 scales, smallest window 3), got H={height}, W={width}"
    )


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM (pytorch-msssim, data_range=1), float64 (N,). Differentiable.

    The window size adapts to small images, see :func:`ms_ssim_window_size`.
    """
    _check_pair(a, b)
    win = ms_ssim_window_size(a.shape[-2], a.shape[-1])
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    val = _pm_ms_ssim(a.to(dtype), b.to(dtype), data_range=1.0, size_average=False, win_size=win)
    return val.to(torch.float64)


# --------------------------------------------------------------------------- #
# VMAF
# --------------------------------------------------------------------------- #
# swscale (libswscale/input.c rgb24ToY_c + the 8-bit planar output) computes
#   v = (ry*R + gy*G + by*B + (32 << 14) + (1 << 8)) >> 9     (Y in 1/64 steps)
#   Y = (v + 32) >> 6
# with coefficients rounded to 1/2**15. Plain round(16 + (65.481 R + 128.553 G
# + 24.966 B) / 255) differs by +1 on ~0.5 % of pixels (exact values with
# fraction in [0.492, 0.5) are rounded up by the two-step rounding).
_LUMA_COEFFS = (65.481, 128.553, 24.966)
_RGB2YUV_SHIFT = 15
_LUMA_INT = tuple(int(round(c / 255.0 * (1 << _RGB2YUV_SHIFT))) for c in _LUMA_COEFFS)  # 8414, 16519, 3208


def rgb_to_luma(x: torch.Tensor, exact_ffmpeg: bool = True) -> torch.Tensor:
    """8-bit BT.601 limited-range luma of RGB images in [0, 1] -> float32 (N, 1, H, W) in [16, 235].

    With ``exact_ffmpeg=True`` (used by :func:`vmaf`) RGB is quantised to
    ``round(255 * x)`` and converted with ffmpeg/swscale's integer arithmetic,
    which is bit-exact with ``ffmpeg -vf format=yuv420p`` on 8-bit RGB. With
    ``exact_ffmpeg=False`` it is ``round(16 + (65.481 R + 128.553 G + 24.966
    B) / 255)`` on unquantised ``R = 255 * x``.
    """
    _check_image(x, "x")
    with torch.no_grad():
        x = x.detach()
        if exact_ffmpeg:
            rgb = (x.to(torch.float32).clamp(0.0, 1.0) * 255.0).round().to(torch.int32)
            ry, gy, by = _LUMA_INT
            acc = ry * rgb[:, 0] + gy * rgb[:, 1] + by * rgb[:, 2]
            v = (acc + (32 << (_RGB2YUV_SHIFT - 1)) + (1 << (_RGB2YUV_SHIFT - 7))) >> (_RGB2YUV_SHIFT - 6)
            y = (v + 32) >> 6
            return y.to(torch.float32).unsqueeze(1)
        rgb = x.to(torch.float64).clamp(0.0, 1.0) * 255.0
        cr, cg, cb = _LUMA_COEFFS
        y = 16.0 + (cr * rgb[:, 0] + cg * rgb[:, 1] + cb * rgb[:, 2]) / 255.0
        return y.round().to(torch.float32).unsqueeze(1)


_VMAF_MODELS: dict = {}
_VMAF_LOCK = threading.Lock()


def _vmaf_dtype(device: torch.device) -> torch.dtype:
    # float32 is not enough: VIF's sigma = E[x^2] - E[x]^2 on 0-255 luma loses
    # precision and flips VIF's thresholds in flat areas (measured: 0.38 VMAF
    # off libvmaf on a Kodak JPEG-10 crop in float32, 0.04 in float64).
    # MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _vmaf_model(device: torch.device):
    key = str(device)
    model = _VMAF_MODELS.get(key)
    if model is None:
        with _VMAF_LOCK:
            model = _VMAF_MODELS.get(key)
            if model is None:
                # Lazy import: vmaf_torch pulls in pandas and yuvio.
                from vmaf_torch import VMAF

                # Default model = vmaf_v0.6.1, parameters are hard-coded in
                # vmaf_torch/svm_predict.py (no file, no download).
                model = VMAF(temporal_pooling=False, enable_motion=False, clip_score=True)
                model = model.to(device=device, dtype=_vmaf_dtype(device)).eval().requires_grad_(False)
                _VMAF_MODELS[key] = model
    return model


def vmaf(reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
    """Per-image VMAF vmaf_v0.6.1 (luma, one frame, 0-100), float64 (N,). Not differentiable.

    Argument order matters: ``reference`` first. See the module docstring for
    the luma conversion and ``docs/vmaf.md`` for agreement with libvmaf.
    """
    _check_pair(reference, distorted, "reference", "distorted")
    h, w = reference.shape[-2:]
    if min(h, w) < VMAF_MIN_SIDE:
        raise ValueError(f"VMAF needs images of at least {VMAF_MIN_SIDE}x{VMAF_MIN_SIDE} pixels, got H={h}, W={w}")
    model = _vmaf_model(reference.device)
    with torch.no_grad():
        dtype = _vmaf_dtype(reference.device)
        ref_y = rgb_to_luma(reference).to(dtype)
        dist_y = rgb_to_luma(distorted).to(dtype)
        score = model(ref_y, dist_y)
    return score.reshape(-1).to(torch.float64)


# --------------------------------------------------------------------------- #
# bit rate
# --------------------------------------------------------------------------- #
def _check_hw(height, width) -> int:
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return height * width


def bpp_from_bytes(nbytes, height: int, width: int) -> torch.Tensor:
    """Bits per pixel from compressed sizes: ``8 * nbytes / (H * W)``, float64 (N,).

    ``nbytes`` is one size per image (tensor, list/tuple, or a single int).
    A tensor keeps its device.
    """
    pixels = _check_hw(height, width)
    if isinstance(nbytes, torch.Tensor):
        n = nbytes.detach().to(torch.float64).reshape(-1)
    else:
        if isinstance(nbytes, (int, float)):
            nbytes = [nbytes]
        n = torch.as_tensor(list(nbytes), dtype=torch.float64).reshape(-1)
    if n.numel() == 0:
        raise ValueError("nbytes is empty")
    if not torch.isfinite(n).all() or (n < 0).any():
        raise ValueError(f"nbytes must be finite and non-negative, got {n.tolist()}")
    return 8.0 * n / pixels


def bpp_estimate(likelihoods, height: int, width: int) -> torch.Tensor:
    """Estimated bits per pixel from entropy-model likelihoods, float64 (N,). Differentiable.

    ``likelihoods`` is an iterable of tensors, each of shape (N, ...) (a
    mapping such as CompressAI's ``out["likelihoods"]`` is also accepted; its
    values are used). Returns ``sum over all tensors of -log2(p)`` per image
    divided by ``H * W``.
    """
    pixels = _check_hw(height, width)
    if isinstance(likelihoods, torch.Tensor):
        tensors = [likelihoods]
    elif isinstance(likelihoods, Mapping):
        tensors = list(likelihoods.values())
    elif isinstance(likelihoods, Iterable):
        tensors = list(likelihoods)
    else:
        raise TypeError(f"likelihoods must be an iterable of tensors, got {type(likelihoods).__name__}")
    if not tensors:
        raise ValueError("likelihoods is empty: need at least one tensor of shape (N, ...)")
    total = None
    n = None
    for i, p in enumerate(tensors):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"likelihoods[{i}] must be a torch.Tensor, got {type(p).__name__}")
        if p.ndim < 1 or p.shape[0] == 0:
            raise ValueError(f"likelihoods[{i}] must have shape (N, ...) with N >= 1, got {tuple(p.shape)}")
        if n is None:
            n = p.shape[0]
        elif p.shape[0] != n:
            raise ValueError(
                f"likelihoods[{i}] has batch size {p.shape[0]}, expected {n} (all tensors must share dim 0)"
            )
        with torch.no_grad():
            if torch.isnan(p).any() or (p <= 0).any():
                raise ValueError(f"likelihoods[{i}] must be positive and not NaN (shape {tuple(p.shape)})")
        bits = -torch.log2(p.to(torch.float64)).reshape(p.shape[0], -1).sum(dim=1)
        total = bits if total is None else total + bits.to(total.device)
    return total / pixels


def bitrate_increase(bpp_clean, bpp_adv):
    """Relative bit-rate increase ``bpp_adv / bpp_clean - 1`` (positive = attack inflated the rate)."""
    if isinstance(bpp_clean, torch.Tensor):
        if (bpp_clean <= 0).any():
            raise ValueError("bpp_clean must be positive")
    elif not bpp_clean > 0:
        raise ValueError(f"bpp_clean must be positive, got {bpp_clean!r}")
    return bpp_adv / bpp_clean - 1


# --------------------------------------------------------------------------- #
# deltas
# --------------------------------------------------------------------------- #
HIGHER_IS_BETTER = frozenset(m.name for m in ROWS if m.higher_is_better)
LOWER_IS_BETTER = frozenset(m.name for m in ROWS if not m.higher_is_better)


def canonical_metric_name(name: str) -> str:
    """``"MS-SSIM"``, ``"ms_ssim"`` -> ``"msssim"``; raises ``ValueError`` for unknown metrics."""
    if not isinstance(name, str):
        raise ValueError(f"metric name must be a string, got {name!r}")
    key = name.lower().replace("-", "").replace("_", "").strip()
    if key not in HIGHER_IS_BETTER and key not in LOWER_IS_BETTER:
        known = sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER)
        raise ValueError(f"unknown metric {name!r}; known metrics: {known}")
    return key


def delta(metric_name: str, clean_score, adv_score):
    """Quality drop caused by the attack (positive = hurt).

    ``clean_score = m(x, C(x))``, ``adv_score = m(x', C(x'))``. Returns
    ``clean - adv`` for higher-is-better metrics and ``adv - clean`` for mse.
    Works on floats and on tensors (elementwise).
    """
    if canonical_metric_name(metric_name) in HIGHER_IS_BETTER:
        return clean_score - adv_score
    return adv_score - clean_score


def amplification(metric_name: str, inputs_score, recon_score):
    """How much the codec amplified the input perturbation (positive = amplified).

    ``inputs_score = m(x, x')``, ``recon_score = m(C(x), C(x'))``. Returns
    ``inputs - recon`` for higher-is-better metrics and ``recon - inputs`` for mse.
    """
    if canonical_metric_name(metric_name) in HIGHER_IS_BETTER:
        return inputs_score - recon_score
    return recon_score - inputs_score


FULL_REFERENCE = {"psnr": psnr, "mse": mse, "msssim": ms_ssim, "vmaf": vmaf}
