"""FTDA: perturbation under an MSE budget, optimised with Adam.

Tong Chen, Zhan Ma, "Toward Robust Neural Image Compression: Adversarial Attack and Model
Finetuning", IEEE TCSVT 33(12), 2023 (arXiv 2112.08691). The paper injects a perturbation
whose MSE to the source stays under a threshold and maximises the distortion of the decoded
reconstruction (our ``recon_shift`` is its objective); ``lr``/``tau``/``steps`` follow
NIC-RobustBench's "ftda" presets.

Budget: MSE(x, x') ≤ tau, x' ∈ [0,1] — exactly, on the attack's returned image.

How the budget is held: δ = √tau · w, Adam ascends the objective in w (so ``lr`` is a
fraction of the budget's RMS per step, independent of tau) and after every step δ is projected
back into the ball (scaled down; clamping to [0,1] only shrinks |δ|, so it stays inside).
The best iterate per image is kept. With ``quantize=True`` (default) the returned x' lies
on the 8-bit grid and MSE(x, x') ≤ tau holds for it (bisection on the perturbation's scale),
so the runner's 8-bit rounding leaves it unchanged and the budget holds on what is encoded.

Arguments:
    codec, objective, proxy, seed: see :class:`~pytest_nicrobust.attacks.base.Attack`.
    tau: MSE budget (default 6e-4, PSNR(x, x') ≥ 32.2 dB).  lr: Adam step in units of √tau (0.2).
    steps: Adam iterations (100).  init_std: std of the random start (3/255; needed because
    at δ = 0 the gradient of a shift objective through rounding is zero).
    quantize: return an 8-bit image inside the budget (1 = yes, default).

Shapes: x (N,3,H,W) in [0,1] -> x' of the same shape and dtype.

Example:
    >>> x_adv = FTDA(codec, tau=6e-4, lr=0.2, steps=100, objective="recon_shift")(x)
"""

from __future__ import annotations

import math

import torch

from .base import Attack, rms_violation
from .constraints import adam_ascent, fit_rmse, shrink_to_rmse


class FTDA(Attack):
    name = "ftda"

    def __init__(self, codec, *, tau=6e-4, lr=0.2, steps=100, init_std=3 / 255, quantize=1, **kwargs):
        super().__init__(codec, **kwargs)
        if tau < 0 or lr <= 0 or steps < 0 or init_std < 0:
            raise ValueError(
                f"{self.name}: need tau >= 0, lr > 0, steps >= 0, init_std >= 0 (got {tau}, {lr}, {steps}, {init_std})"
            )
        self.tau, self.lr, self.steps = float(tau), float(lr), int(steps)
        self.init_std, self.quantize = float(init_std), bool(quantize)

    def budget_violation(self, x, x_adv):
        return rms_violation(x, x_adv, math.sqrt(self.tau))

    def perturb(self, x):
        budget = math.sqrt(self.tau)
        if budget == 0:
            return x.clone()
        rec_clean = self.reference(x)
        z = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        delta = shrink_to_rmse(x, self.init_std * z, budget)
        w = (delta / budget).requires_grad_(True)

        def evaluate():
            x_adv = x + budget * w
            return x_adv, self.objective_value(x, x_adv, rec_clean)

        best = adam_ascent(
            w,
            self.lr,
            self.steps,
            evaluate,
            lambda: w.copy_(shrink_to_rmse(x, budget * w, budget) / budget),
            start=x,
            record=self.record,
        )
        return fit_rmse(x, best, budget, quantize=self.quantize)
