"""Gaussian-noise baseline: the floor every real attack must beat.

Not a paper method: the "random-noise" baseline of NIC-RobustBench (Kovalev et al.,
arXiv 2506.19051) and of "Exploring adversarial robustness of JPEG AI" (arXiv 2411.11795).

Budget: L∞ — x' = clip(x + N(0, sigma²), x ± eps), x' ∈ [0,1]. The objective is accepted
(any of them) and ignored: the noise does not look at the codec.

Arguments:
    codec, objective, proxy, seed: see :class:`~pytest_nicrobust.attacks.base.Attack`
    (objective and proxy are ignored; the noise is drawn from ``seed``).
    eps: L∞ bound (default 7/255).  sigma: noise standard deviation (default None = eps).

Shapes: x (N,3,H,W) in [0,1] -> x' of the same shape and dtype.

Example:
    >>> x_adv = GaussianNoise(codec, eps=7/255, seed=3)(x)
"""

from __future__ import annotations

import torch

from .base import Attack, linf_8bit, linf_violation, project_linf


class GaussianNoise(Attack):
    name = "noise"

    def __init__(self, codec, *, eps=7 / 255, sigma=None, **kwargs):
        super().__init__(codec, **kwargs)
        sigma = eps if sigma is None else sigma
        if eps < 0 or sigma < 0:
            raise ValueError(f"{self.name}: need eps >= 0 and sigma >= 0 (got {eps}, {sigma})")
        self.eps, self.sigma = float(eps), float(sigma)

    def budget_violation(self, x, x_adv):
        return linf_violation(x, x_adv, self.eps)

    def perturb(self, x):
        z = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return linf_8bit(x, project_linf(x + self.sigma * z, x, self.eps), self.eps)
