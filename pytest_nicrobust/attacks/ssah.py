"""SSAH: semantic attack with a low-frequency (Haar LL band) constraint.

Cheng Luo, Qinliang Lin, Weicheng Xie, Bizhu Wu, Jinheng Xie, Linlin Shen, "Frequency-driven
Imperceptible Adversarial Attack on Semantic Similarity", CVPR 2022 (arXiv 2203.05151).
The paper perturbs the image so that its features move, while penalising the change of the
low-frequency band of a Haar DWT (the part the eye is most sensitive to); it optimises
w with x' = (tanh(w) + 1)/2 (no box constraint needed) with Adam, starting from a slightly
noisy image. Here the "semantic" term is the codec objective.

Loss maximised: objective(x') − lambda_lf · ‖LL(x') − LL(x)‖₂ / sqrt(#LL coefficients)
(the RMS of the low-frequency change, so lambda_lf does not depend on the image size).

Budget: soft (the penalty) plus a hard L∞ cap ``eps`` (default 8/255) so that a preset
cannot drift into a visibly different image: with Adam in tanh space every pixel moves by
up to ~lr/2 per step whatever the gradient's size, so lr 0.2 (NIC-RobustBench's preset) ×
50 steps would otherwise repaint the image; the cap keeps SSAH next to the L∞ 7/255 attacks
(PSNR(x, x') ≈ 29–31 dB) while the LL penalty decides where inside the cap the change goes.
x' ∈ [0,1].

Arguments:
    codec, objective, proxy, seed: see :class:`~pytest_nicrobust.attacks.base.Attack`.
    lr: Adam learning rate on w (0.2).  lambda_lf: weight of the LL-band penalty (0.1).
    steps: iterations (50).  init_std: std of the Gaussian start (3/255).
    eps: hard L∞ cap (8/255; 0 disables it).

Shapes: x (N,3,H,W) in [0,1] -> x' of the same shape and dtype.

Example:
    >>> x_adv = SSAH(codec, lr=0.2, lambda_lf=0.1, steps=50)(x)
"""

from __future__ import annotations

import torch

from .base import Attack, linf_violation
from .constraints import adam_ascent
from .haar import low_frequency

_EDGE = 1e-6  # keep atanh finite at 0 and 1


class SSAH(Attack):
    name = "ssah"

    def __init__(self, codec, *, lr=0.2, lambda_lf=0.1, steps=50, init_std=3 / 255, eps=8 / 255, **kwargs):
        super().__init__(codec, **kwargs)
        if lr <= 0 or lambda_lf < 0 or steps < 0 or init_std < 0 or eps < 0:
            raise ValueError(
                f"{self.name}: need lr > 0 and lambda_lf, steps, init_std, eps >= 0 "
                f"(got {lr}, {lambda_lf}, {steps}, {init_std}, {eps})"
            )
        self.lr, self.lambda_lf, self.steps = float(lr), float(lambda_lf), int(steps)
        self.init_std, self.eps = float(init_std), float(eps)

    def budget_violation(self, x, x_adv):
        return linf_violation(x, x_adv, self.eps) if self.eps > 0 else None

    def _cap(self, x_adv, bounds):
        """Into the L∞ cap; ``bounds`` = (max(x − eps, 0), min(x + eps, 1)), computed once per image."""
        return x_adv.clamp(*bounds) if self.eps > 0 else x_adv.clamp(0, 1)

    def lf_penalty(self, x, x_adv, ll_clean):
        diff = low_frequency(x_adv) - ll_clean
        return diff.pow(2).flatten(1).mean(dim=1).sqrt()

    def perturb(self, x):
        rec_clean = self.reference(x)
        ll_clean = low_frequency(x)
        bounds = ((x - self.eps).clamp(0, 1), (x + self.eps).clamp(0, 1))
        z = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        x0 = self._cap(x + self.init_std * z, bounds)
        w = torch.atanh((2 * x0 - 1) * (1 - _EDGE)).requires_grad_(True)

        def evaluate():
            x_adv = self._cap((torch.tanh(w) / (1 - _EDGE) + 1) / 2, bounds)
            value = self.objective_value(x, x_adv, rec_clean)
            return x_adv, value - self.lambda_lf * self.lf_penalty(x, x_adv, ll_clean)

        def project():  # keep w on the capped image so the cap does not let w drift
            capped = self._cap((torch.tanh(w) / (1 - _EDGE) + 1) / 2, bounds)
            w.copy_(torch.atanh((2 * capped - 1) * (1 - _EDGE)))

        return adam_ascent(w, self.lr, self.steps, evaluate, project, start=x, record=self.record)
