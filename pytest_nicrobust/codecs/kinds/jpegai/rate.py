"""Estimated bits of a JPEG AI latent, counted with the tables its entropy coder codes with.

The reference software codes the quantised residual of the latent with a table-based ANS coder
(me-tANS: 32 distributions over a 256-state table, one chosen per element by the integer scale
index the hyper-decoder gives; values at or beyond the distribution's bound are escaped with the
escape symbol and 4 or 17 raw bits), only at the elements its skip mode keeps, and the hyper
latent with per-channel tables derived from its factorised model. Its own estimate (the "lh"
coder the bitrate matcher uses) is a continuous Gaussian likelihood over every element, skipped
or not, and runs about 1.3-1.6x the real stream on random weights; counting with the coder's
tables tracks the stream within a few per cent (docs/jpegai.md).

For gradients the cost of a residual value ``v`` is made piecewise linear between the table's
integer points: under the straight-through proxy ``v`` is an integer in the forward pass (the
exact table cost) and its gradient is the central difference; under the noise proxy the cost is
interpolated. The scale indices come from the tree's integer hyperprior; with the hyperprior's
gradient (hyperprior.py) a value's cost moves between neighbouring tables as its scale does
(:func:`index_slope`), and the hyper latent's cost is piecewise linear between its symbols.
"""

from __future__ import annotations

import numpy as np
import torch


def residual_cost_table(tree) -> torch.Tensor:
    """Bits of each residual value -128..128 under each of the coder's distributions: (32, 257)."""
    mans = tree.module("src.codec.entropy_coding.lib_wrappers.mans.ec_lib_mans")
    lib = mans.ECLibMans()
    bounds = np.asarray(lib.bounds, dtype=np.int64)
    lo, hi = lib.quant_values
    pmf = np.zeros([len(lib.pdf_r), hi - lo], dtype=np.int64)
    for i, row in enumerate(lib.pdf_r):  # as its table initialisation lays them out
        pmf[i, : len(row)] = row
        pmf[i, bounds[i] * 2 - 1] = 1
    states = 256
    values = np.arange(-128, 129)
    cost = np.zeros([len(bounds), len(values)])
    for i, bound in enumerate(bounds):
        escape = -np.log2(pmf[i, 2 * bound - 1] / states)
        for j, v in enumerate(values):
            if abs(v) < bound:  # symbols interleave 0, -1, 1, -2, 2, ...
                p = pmf[i, 2 * v if v >= 0 else -2 * v - 1]
                cost[i, j] = -np.log2(p / states) if p > 0 else escape + 17
            else:
                coded = 2 * (v - bound) if v >= bound else 2 * (-v - bound) + 1
                cost[i, j] = escape + (4 if coded < 8 else 17)
    return torch.tensor(cost, dtype=torch.float32)


def residual_bits(resid: torch.Tensor, index: torch.Tensor, cost: torch.Tensor, proxy: str) -> torch.Tensor:
    """Per-element bits of residuals ``resid`` (float, differentiable) under distributions ``index``."""
    count, width = cost.shape
    half = (width - 1) // 2
    v = resid.clamp(-half + 1, half - 1)
    base = v.detach().floor() if proxy == "noise" else v.detach().round()
    row = cost.to(v.device)[index.clamp(0, count - 1)]

    def at(k):
        return torch.gather(row, -1, (k + half).long().unsqueeze(-1)).squeeze(-1)

    here = at(base)
    if proxy == "noise":
        return here + (v - base) * (at(base + 1) - here)
    return here + (v - v.detach()) * (at(base + 1) - at(base - 1)) / 2


def values_bits(cost: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Bits of integer residual ``values`` (clamped to the table) under distributions ``index``; no gradient."""
    count, width = cost.shape
    half = (width - 1) // 2
    row = cost.to(values.device)[index.clamp(0, count - 1)]
    return torch.gather(row, -1, (values.detach().clamp(-half, half) + half).long().unsqueeze(-1)).squeeze(-1)


def index_slope(cost: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Bits per table index of integer ``values`` at ``index``: the difference between the neighbouring
    tables (central; one-sided at the first and last), the scale-index choice's stand-in."""
    last = cost.shape[0] - 1
    up, down = (index + 1).clamp(max=last), (index - 1).clamp(min=0)
    return (values_bits(cost, up, values) - values_bits(cost, down, values)) / (up - down).clamp(min=1)


def hyper_bits(tree, common_modules, z_hat: torch.Tensor) -> torch.Tensor:
    """Bits of the integer hyper latent under the per-channel tables its coder builds; a float twin
    with a gradient (hyperprior.py) gets the central difference between neighbouring symbols."""
    wrapper = tree.module("src.codec.entropy_coding.lib_wrappers.mans.custom_prob_wrapper").CustomProbWrapper
    chs = z_hat.shape[1]
    pmfs = common_modules.hyper_entropy.get_freq_table(chs, common_modules.z_range, common_modules.z_offset)
    cdf = torch.tensor(wrapper.normalize_z(pmfs).astype(np.int64)).reshape(chs, -1)
    pmf = torch.diff(cdf, dim=1, prepend=torch.zeros(chs, 1, dtype=torch.long))
    cost = torch.where(
        pmf > 0, -torch.log2(pmf.clamp(min=1).double() / 256), torch.full(pmf.shape, 14.0, dtype=torch.double)
    )
    cost = cost.float().to(z_hat.device)
    width = cost.shape[1]
    symbols = (z_hat.detach().long() + common_modules.z_offset)[0].reshape(chs, -1).clamp(0, width - 1)
    bits = torch.gather(cost, 1, symbols).sum()
    if not (z_hat.is_floating_point() and z_hat.requires_grad):
        return bits
    slope = (
        torch.gather(cost, 1, (symbols + 1).clamp(max=width - 1)) - torch.gather(cost, 1, (symbols - 1).clamp(min=0))
    ) / 2
    return bits + ((z_hat - z_hat.detach())[0].reshape(chs, -1) * slope).sum()
