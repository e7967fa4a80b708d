"""Attack objectives (all maximised), one value per image.

Names are ours (docs/attacks.md). With x the clean image, x' the attacked one, C(.) the
codec's differentiable reconstruction:

=============== =====================================================
recon_shift     MSE(C(x'), C(x))          (FTDA's objective)
recon_error     MSE(C(x'), x')
source_error    MSE(C(x'), x)
amplify         MSE(C(x') − C(x), x' − x)
msssim_shift    1 − MS-SSIM(C(x'), C(x))
msssim_error    1 − MS-SSIM(C(x'), x')
bitrate         estimated bpp of x'
=============== =====================================================

Distances are computed in RGB, in YCbCr (BT.601, full range) or on luma only.
"""

from __future__ import annotations

import torch

from ..metrics.colors import to_color_space


def _mse(a, b):
    return (a - b).pow(2).flatten(1).mean(dim=1)


def _msssim_loss(a, b):
    # any channel count (RGB, YCbCr or luma), same window rule as metrics.ms_ssim
    from pytorch_msssim import ms_ssim

    from ..metrics.full_reference import ms_ssim_window_size

    win = ms_ssim_window_size(*a.shape[-2:])
    return 1 - ms_ssim(a.clamp(0, 1), b.clamp(0, 1), data_range=1.0, size_average=False, win_size=win)


def evaluate_objective(name: str, color: str, x, x_adv, rec_clean, rec_adv, bpp_adv) -> torch.Tensor:
    if name == "bitrate":
        return bpp_adv
    x, x_adv, rec_clean, rec_adv = (
        None if t is None else to_color_space(t, color) for t in (x, x_adv, rec_clean, rec_adv)
    )
    if name == "recon_shift":
        return _mse(rec_adv, rec_clean)
    if name == "recon_error":
        return _mse(rec_adv, x_adv)
    if name == "source_error":
        return _mse(rec_adv, x)
    if name == "amplify":
        return _mse(rec_adv - rec_clean, x_adv - x)
    if name == "msssim_shift":
        return _msssim_loss(rec_adv, rec_clean)
    if name == "msssim_error":
        return _msssim_loss(rec_adv, x_adv)
    raise ValueError(f"unknown objective {name!r}")
