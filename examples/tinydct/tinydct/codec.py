"""TinyDCT: a small transform codec that is not a CompressAI model.

Blockwise 8×8 DCT of YCbCr, uniform quantisation with a JPEG-like step table, and for each of
the 3 × 64 coefficients a Laplacian entropy model whose scales come from a weights file. The
bits are coded for real with the rANS coder of ``compressai.ans`` (an entropy coder is a
library; the model, the transform and the probabilities are this codec's own).

The adapter to pytest-nicrobust is in :mod:`tinydct.nicrobust`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLOCK = 8
PRECISION = 16  # bits of the quantised CDFs
TAIL = 64  # coded values per coefficient: -TAIL..TAIL-1; others are escaped (exact)
# JPEG's luminance table (ITU-T T.81 K.1), used for all three channels, in units of 1/255
_JPEG = [
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
]
_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def dct_basis() -> torch.Tensor:
    """(64, 1, 8, 8) orthonormal 2-D DCT-II filters."""
    n = torch.arange(BLOCK, dtype=torch.float64)
    c = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    c[0] /= math.sqrt(2)
    return torch.einsum("ui,vj->uvij", c, c).reshape(64, 1, BLOCK, BLOCK).float()


class TinyDCT(torch.nn.Module):
    """``scales`` (3, 64): Laplacian scale of each coefficient; ``step``: quantiser step multiplier."""

    def __init__(self, scales: torch.Tensor, step: float):
        super().__init__()
        self.register_buffer("basis", dct_basis())
        self.register_buffer("steps", torch.tensor(_JPEG, dtype=torch.float32).repeat(3, 1) / 255 * step)
        self.register_buffer("scales", scales.float())
        self.eval()

    # -- transform --------------------------------------------------------------------
    def analysis(self, x):
        """(N, 3, H, W) RGB in [0, 1] -> (N, 3, 64, H/8, W/8) coefficients / step."""
        ycc = torch.einsum("ij,njhw->nihw", _YCBCR.to(x), x) - torch.tensor([0.5, 0, 0], device=x.device).view(
            1, 3, 1, 1
        )
        n, c, h, w = ycc.shape
        coef = F.conv2d(ycc.reshape(n * c, 1, h, w), self.basis, stride=BLOCK).reshape(n, c, 64, h // BLOCK, w // BLOCK)
        return coef / self.steps.view(1, 3, 64, 1, 1)

    def synthesis(self, y):
        n, c, _, hb, wb = y.shape
        coef = (y * self.steps.view(1, 3, 64, 1, 1)).reshape(n * c, 64, hb, wb)
        ycc = F.conv_transpose2d(coef, self.basis, stride=BLOCK).reshape(n, c, hb * BLOCK, wb * BLOCK)
        ycc = ycc + torch.tensor([0.5, 0, 0], device=y.device).view(1, 3, 1, 1)
        return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_YCBCR).to(y), ycc)

    # -- entropy model -----------------------------------------------------------------
    def _b(self):
        return (self.scales / self.steps).clamp_min(1e-3).view(1, 3, 64, 1, 1)  # in quantised units

    def likelihood(self, y_hat):
        """P(ŷ) of a Laplacian discretised to integers (differentiable in ŷ)."""
        b = self._b()

        def cdf(v):
            return 0.5 + 0.5 * torch.sign(v) * (1 - torch.exp(-v.abs() / b))

        return (cdf(y_hat + 0.5) - cdf(y_hat - 0.5)).clamp_min(1e-9)

    def quantized_cdfs(self):
        """One CDF per coefficient for the rANS coder: values -TAIL..TAIL-1, the rest escaped."""
        from compressai._CXX import pmf_to_quantized_cdf

        values = torch.arange(-TAIL, TAIL, dtype=torch.float32).view(1, 1, 1, 1, -1).expand(1, 3, 64, 1, 2 * TAIL)
        pmf = self.likelihood(values.permute(0, 1, 2, 4, 3)).reshape(3 * 64, 2 * TAIL).double()
        cdfs = [pmf_to_quantized_cdf(p.tolist() + [max(1.0 - float(p.sum()), 1e-9)], PRECISION) for p in pmf]
        return cdfs, [len(c) for c in cdfs], [-TAIL] * len(cdfs)

    # -- the codec ------------------------------------------------------------------------
    def encode(self, x) -> list[bytes]:
        from compressai.ans import RansEncoder

        y = torch.round(self.analysis(x)).int()
        cdfs, lengths, offsets = self.quantized_cdfs()
        index = torch.arange(3 * 64).view(3, 64, 1, 1).expand(*y.shape[1:]).reshape(-1).tolist()
        coder = RansEncoder()
        return [coder.encode_with_indexes(yi.reshape(-1).tolist(), index, cdfs, lengths, offsets) for yi in y]

    def decode(self, strings: list[bytes], shape) -> torch.Tensor:
        from compressai.ans import RansDecoder

        n, (hb, wb) = len(strings), shape
        cdfs, lengths, offsets = self.quantized_cdfs()
        index = torch.arange(3 * 64).view(3, 64, 1, 1).expand(3, 64, hb, wb).reshape(-1).tolist()
        decoder = RansDecoder()
        y = torch.tensor(
            [decoder.decode_with_indexes(s, index, cdfs, lengths, offsets) for s in strings], dtype=torch.float32
        ).view(n, 3, 64, hb, wb)
        return self.synthesis(y.to(self.basis.device)).clamp(0, 1)
