"""MADC: maximum-differentiation competition against a fixed proxy metric.

Zhou Wang, Eero P. Simoncelli, "Maximum differentiation (MAD) competition: a methodology for
comparing computational models of perceptual quantities", Journal of Vision 8(12):8, 2008.
MAD searches, on the level set of one metric (here the proxy: RMSE or L∞ distance to x), for
the image that is best / worst for another (here the attack objective): every step is the
objective's gradient with its component along the proxy's gradient removed, followed by a
projection back onto the proxy's level set. The search starts from random noise already on
that level set, as in MAD.

Budget: proxy fixed — ``MADC``: RMSE(x, x') ≤ eps (held at = eps up to clamping and 8-bit
rounding); ``MADCLinf``: ‖x' − x‖∞ ≤ eps. x' ∈ [0,1].

Why eps = 7/255 and not NIC-RobustBench's 6e-4: read as an RMSE, 6e-4 is 0.15/255, below one
8-bit step, so the perturbation is rounded away when the image is saved; RMSE 7/255 (PSNR
31.2 dB) has the energy of an L∞ 7/255 sign perturbation (I-FGSM's budget), visible on flat
areas but comparable across attacks.

Arguments:
    codec, objective, proxy, seed: see :class:`~pytest_nicrobust.attacks.base.Attack`.
    eps: proxy budget (7/255).  alpha: step size, as RMSE of the step (``MADC``) or its largest
    pixel change (``MADCLinf``) (2/255 and 1/255).  steps: iterations (25 / 30).
    quantize (``MADC`` only): return an 8-bit image inside the budget (1, default).

Shapes: x (N,3,H,W) in [0,1] -> x' of the same shape and dtype.

Example:
    >>> x_adv = MADC(codec, eps=7/255, alpha=2/255, steps=25, seed=0)(x)
    >>> x_adv = MADCLinf(codec, eps=7/255, alpha=1/255, steps=30, seed=0)(x)
"""

from __future__ import annotations

import torch

from .base import Attack, linf_8bit, linf_violation, project_linf, rms_violation
from .constraints import Best, fit_rmse, rescale_to_rmse


def _dot(a, b):
    return (a * b).flatten(1).sum(dim=1).view(-1, 1, 1, 1)


def _orthogonal(g, p):
    """g with its component along p removed (per image)."""
    return g - _dot(g, p) / _dot(p, p).clamp_min(1e-30) * p


class MADC(Attack):
    name = "madc"
    default_steps = 25

    def __init__(self, codec, *, eps=7 / 255, alpha=2 / 255, steps=None, quantize=1, **kwargs):
        super().__init__(codec, **kwargs)
        steps = self.default_steps if steps is None else steps
        if eps < 0 or alpha <= 0 or steps < 0:
            raise ValueError(f"{self.name}: need eps >= 0, alpha > 0, steps >= 0 (got {eps}, {alpha}, {steps})")
        self.eps, self.alpha, self.steps, self.quantize = float(eps), float(alpha), int(steps), bool(quantize)

    def budget_violation(self, x, x_adv):
        return rms_violation(x, x_adv, self.eps)

    # -- proxy-specific pieces ----------------------------------------------------
    def start(self, x):
        z = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return x + rescale_to_rmse(x, z, self.eps)

    def proxy_gradient(self, d):
        return d  # ∇ RMSE(δ) ∝ δ

    def step(self, g):
        n = g[0].numel()
        return self.alpha * g * (n**0.5) / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)

    def restore(self, x, x_adv):
        return x + rescale_to_rmse(x, x_adv - x, self.eps)

    def finish(self, x, x_adv):
        return fit_rmse(x, x_adv, self.eps, quantize=self.quantize)

    # -- MAD loop -----------------------------------------------------------------
    def perturb(self, x):
        if self.eps == 0:
            return x.clone()
        rec_clean = self.reference(x)
        x_adv = self.start(x)
        best = Best(x)
        for i in range(self.steps + 1):
            value, grad = self.gradient(x, x_adv, rec_clean)
            best.update(x_adv, value)
            if i == self.steps:
                break
            g = _orthogonal(grad, self.proxy_gradient(x_adv - x))
            x_adv = self.restore(x, x_adv + self.step(g)).detach()
        return self.finish(x, best.x)


class MADCLinf(MADC):
    """MADC with the L∞ distance as the proxy (smoothed by an L16 norm for its gradient)."""

    name = "madc-linf"
    default_steps = 30
    p = 16

    def __init__(self, codec, *, eps=7 / 255, alpha=1 / 255, steps=None, **kwargs):
        super().__init__(codec, eps=eps, alpha=alpha, steps=steps, **kwargs)

    def budget_violation(self, x, x_adv):
        return linf_violation(x, x_adv, self.eps)

    def start(self, x):
        return project_linf(x + self.uniform(x, -self.eps, self.eps), x, self.eps)

    def proxy_gradient(self, d):
        scale = d.abs().flatten(1).amax(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)
        return torch.sign(d) * (d.abs() / scale) ** (self.p - 1)  # ∇ ‖δ‖_p up to a positive factor

    def step(self, g):
        return self.alpha * g / g.abs().flatten(1).amax(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)

    def restore(self, x, x_adv):
        d = x_adv - x
        # back onto the level set ‖δ‖∞ = eps: scale up if the step shrank it, then clip
        peak = d.abs().flatten(1).amax(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)
        d = d * (self.eps / peak).clamp(min=1.0)
        return project_linf(x + d, x, self.eps)

    def finish(self, x, x_adv):
        return linf_8bit(x, project_linf(x_adv, x, self.eps), self.eps)
