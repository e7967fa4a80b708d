"""Colour conversions shared by objectives, metrics and attacks (BT.601)."""

from __future__ import annotations

import torch

_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """Full-range BT.601 YCbCr in [0,1] (Cb, Cr centred on 0.5)."""
    m = _YCBCR.to(x.device, x.dtype)
    out = torch.einsum("ij,njhw->nihw", m, x)
    return out + torch.tensor([0.0, 0.5, 0.5], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)


def ycbcr_to_rgb(y: torch.Tensor) -> torch.Tensor:
    m = torch.linalg.inv(_YCBCR).to(y.device, y.dtype)
    centred = y - torch.tensor([0.0, 0.5, 0.5], device=y.device, dtype=y.dtype).view(1, 3, 1, 1)
    return torch.einsum("ij,njhw->nihw", m, centred)


def to_color_space(x: torch.Tensor, space: str) -> torch.Tensor:
    if space == "rgb":
        return x
    ycc = rgb_to_ycbcr(x)
    if space == "ycbcr":
        return ycc
    if space == "luma":
        return ycc[:, :1]
    raise ValueError(f"unknown colour space {space!r}")
