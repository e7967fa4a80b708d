"""One-level orthonormal 2-D Haar wavelet transform (differentiable, any batch/channels).

LL = (a + b + c + d) / 2 over each 2×2 block [[a, b], [c, d]]; LH, HL, HH the three detail
bands. Odd sizes are padded by replicating the last row/column. ``haar_idwt`` inverts it.
"""

from __future__ import annotations

import torch.nn.functional as F


def haar_dwt(x):
    """(N,C,H,W) -> (LL, LH, HL, HH), each (N,C,ceil(H/2),ceil(W/2))."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    ll = (a + b + c + d) / 2
    lh = (a - b + c - d) / 2  # horizontal detail (changes along x)
    hl = (a + b - c - d) / 2  # vertical detail
    hh = (a - b - c + d) / 2
    return ll, lh, hl, hh


def haar_idwt(ll, lh, hl, hh):
    """Inverse of :func:`haar_dwt` (for even-sized inputs)."""
    a = (ll + lh + hl + hh) / 2
    b = (ll - lh + hl - hh) / 2
    c = (ll + lh - hl - hh) / 2
    d = (ll - lh - hl + hh) / 2
    n, ch, h, w = ll.shape
    out = ll.new_empty(n, ch, 2 * h, 2 * w)
    out[..., 0::2, 0::2] = a
    out[..., 0::2, 1::2] = b
    out[..., 1::2, 0::2] = c
    out[..., 1::2, 1::2] = d
    return out


def low_frequency(x):
    """The LL band alone, with the same arithmetic as :func:`haar_dwt` (the attacks need only it)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return (x[..., 0::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
