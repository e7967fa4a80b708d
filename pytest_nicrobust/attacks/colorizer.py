"""Colourisers for CAdv: dense chroma from luma/colour guide plus sparse colour hints.

A colouriser is any callable ``colorizer(guide, mask, hints) -> chroma`` with
``guide`` (N,3,H,W) the clean image in YCbCr (BT.601 full range, [0,1]), ``mask`` (N,1,H,W)
1 at hint pixels, ``hints`` (N,2,H,W) the (Cb, Cr) wanted at those pixels (ignored
elsewhere); it returns (N,2,H,W) chroma and must be differentiable in ``hints``. It carries a
``name`` that the attack reports.

* :class:`EdgeAwarePropagation` (default, no weights): normalised convolution of the hints
  with an edge-stopping à-trous filter guided by the image (Dammertz, Sewtz, Hanika, Lensch,
  "Edge-avoiding À-Trous wavelet transform for fast global illumination filtering", HPG 2010;
  normalised convolution: Knutsson & Westin, CVPR 1993). Hints spread within regions of
  similar luma and colour and stop at edges, like a user-guided colouriser without a prior.
* :class:`ZhangColorizer`: the user-guided network of Zhang, Zhu, Isola, Geng, Lin, Yu, Efros,
  "Real-Time User-Guided Image Colorization with Learned Deep Priors", SIGGRAPH 2017, the
  colouriser cAdv used; architecture written here from the paper, weights loaded from a file
  the user provides (``torch.load(..., weights_only=True)``). Works in CIE Lab; the adapter
  converts hints to Lab and the output back to (Cb, Cr).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..metrics.colors import rgb_to_ycbcr, ycbcr_to_rgb


class EdgeAwarePropagation:
    """Weight-free, differentiable hint propagation (edge-avoiding à-trous normalised convolution).

    sigma: guide-difference scale of the edge-stopping weight exp(−‖g_i − g_j‖² / (2 sigma²)).
    cycles: fine-to-coarse-to-fine passes over dilations 1, 2, 4, ... up to a quarter of the image.
    """

    name = "edge-aware-propagation"

    def __init__(self, sigma: float = 0.05, cycles: int = 2):
        self.sigma, self.cycles = float(sigma), int(cycles)

    def _dilations(self, h, w):
        ds, d = [], 1
        while d <= max(1, max(h, w) // 4):
            ds.append(d)
            d *= 2
        order = []
        for c in range(self.cycles):
            order += ds if c % 2 == 0 else ds[::-1]
        return order

    def __call__(self, guide, mask, hints):
        h, w = guide.shape[-2:]
        value = hints * mask
        weight = mask.to(hints.dtype)
        for d in self._dilations(h, w):
            gp = F.pad(guide, (d, d, d, d), mode="replicate")
            vp = F.pad(torch.cat([value, weight], dim=1), (d, d, d, d), mode="replicate")
            acc = torch.zeros_like(torch.cat([value, weight], dim=1))
            norm = torch.zeros_like(weight)
            for dy in (-d, 0, d):
                for dx in (-d, 0, d):
                    g = gp[..., d + dy : d + dy + h, d + dx : d + dx + w]
                    k = torch.exp(-(g - guide).pow(2).sum(dim=1, keepdim=True) / (2 * self.sigma**2))
                    acc = acc + k * vp[..., d + dy : d + dy + h, d + dx : d + dx + w]
                    norm = norm + k
            acc = acc / norm
            value, weight = acc[:, :2], acc[:, 2:]
        filled = weight > 1e-20
        return torch.where(
            filled, value / torch.where(filled, weight, torch.ones_like(weight)), torch.zeros_like(value)
        )


# -- CIE Lab (sRGB, D65) ---------------------------------------------------------------

_RGB2XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def rgb_to_lab(rgb):
    lin = torch.where(rgb > 0.04045, ((rgb.clamp_min(0) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,njhw->nihw", _RGB2XYZ.to(rgb), lin) / _WHITE.to(rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    L = 116 * f[:, 1:2] - 16
    a = 500 * (f[:, 0:1] - f[:, 1:2])
    b = 200 * (f[:, 1:2] - f[:, 2:3])
    return torch.cat([L, a, b], dim=1)


def lab_to_rgb(lab):
    L, a, b = lab[:, 0:1], lab[:, 1:2], lab[:, 2:3]
    fy = (L + 16) / 116
    f = torch.cat([fy + a / 500, fy, fy - b / 200], dim=1)
    xyz = torch.where(f > 0.206893, f**3, (f - 16 / 116) / 7.787) * _WHITE.to(lab).view(1, 3, 1, 1)
    lin = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB2XYZ).to(lab), xyz)
    return torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(1e-12) ** (1 / 2.4) - 0.055, 12.92 * lin)


# -- Zhang et al. 2017 user-guided colourisation network -------------------------------


def _block(cin, cout, n, dilation=1, norm=True):
    layers = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=dilation, dilation=dilation), nn.ReLU(True)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class ZhangNet(nn.Module):
    """U-Net-like colouriser of Zhang et al. 2017: input (L, ab hints, mask), output ab.

    Encoder 64-128-256-512 (each stage halves the resolution), two dilated 512 stages, one
    512 stage, decoder with transposed convolutions and skip connections from the encoder
    stages, ab regressed with tanh (× 110), plus the paper's 313-bin+ classification head.
    """

    def __init__(self, classes: int = 529):
        super().__init__()
        self.enc1 = _block(4, 64, 2)
        self.enc2 = _block(64, 128, 2)
        self.enc3 = _block(128, 256, 3)
        self.enc4 = _block(256, 512, 3)
        self.mid5 = _block(512, 512, 3, dilation=2)
        self.mid6 = _block(512, 512, 3, dilation=2)
        self.mid7 = _block(512, 512, 3)
        self.up8 = nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1)
        self.skip3 = nn.Conv2d(256, 256, 3, padding=1)
        self.dec8 = nn.Sequential(
            nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(True),
            nn.BatchNorm2d(256),
        )
        self.up9 = nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1)
        self.skip2 = nn.Conv2d(128, 128, 3, padding=1)
        self.dec9 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(True), nn.BatchNorm2d(128))
        self.up10 = nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1)
        self.skip1 = nn.Conv2d(64, 128, 3, padding=1)
        self.dec10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1), nn.LeakyReLU(0.2, True))
        self.classify = nn.Conv2d(256, classes, 1)
        self.out = nn.Conv2d(128, 2, 1)

    def forward(self, L, ab, mask):
        """L in [0,100], ab hints in Lab units, mask in {0,1}; sizes divisible by 8."""
        x = torch.cat([(L - 50) / 100, ab / 110, mask - 0.5], dim=1)
        c1 = self.enc1(x)
        c2 = self.enc2(c1[..., ::2, ::2])
        c3 = self.enc3(c2[..., ::2, ::2])
        c4 = self.enc4(c3[..., ::2, ::2])
        c7 = self.mid7(self.mid6(self.mid5(c4)))
        c8 = self.dec8(self.up8(c7) + self.skip3(c3))
        c9 = self.dec9(self.up9(c8) + self.skip2(c2))
        c10 = self.dec10(self.up10(c9) + self.skip1(c1))
        return torch.tanh(self.out(c10)) * 110


class ZhangColorizer:
    """Adapter: YCbCr guide + (Cb, Cr) hints -> ZhangNet in Lab -> (Cb, Cr)."""

    name = "zhang2017"

    def __init__(self, weights: str | None = None, device="cpu"):
        self.net = ZhangNet().to(device).eval()
        self.weights = weights
        if weights is not None:
            state = torch.load(weights, map_location=device, weights_only=True)
            self.net.load_state_dict(state)
        for p in self.net.parameters():
            p.requires_grad_(False)

    def __call__(self, guide, mask, hints):
        h, w = guide.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        rgb = ycbcr_to_rgb(guide).clamp(0, 1)
        lab = rgb_to_lab(rgb)
        hint_rgb = ycbcr_to_rgb(torch.cat([guide[:, :1], hints], dim=1)).clamp(0, 1)
        hint_ab = rgb_to_lab(hint_rgb)[:, 1:] * mask
        pad = (0, pw, 0, ph)
        L = F.pad(lab[:, :1], pad, mode="replicate")
        ab = self.net(L, F.pad(hint_ab, pad), F.pad(mask.to(guide.dtype), pad))[..., :h, :w]
        out = lab_to_rgb(torch.cat([lab[:, :1], ab], dim=1)).clamp(0, 1)
        return rgb_to_ycbcr(out)[:, 1:]


def make_colorizer(weights: str | None = None, device="cpu"):
    """The Zhang et al. network when a weights file is given, else edge-aware propagation."""
    if weights:
        return ZhangColorizer(weights, device=device)
    return EdgeAwarePropagation()
