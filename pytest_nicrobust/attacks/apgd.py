"""APGD: auto-PGD, projected gradient ascent that schedules its own step size.

Francesco Croce, Matthias Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020 (arXiv 2003.01690), the core attack of AutoAttack.
Plain PGD spends a fixed step: too large and it oscillates around the best point, too small and it
stops short. APGD starts with a large step (2·eps), moves with momentum, keeps the best point seen,
and at checkpoints halves its step and restarts from the best point when its last stretch went badly.

Per image, with f the objective and P the projection onto the budget:

* z = P(x_k + η_k · sign(∇f(x_k))),  x_{k+1} = P(x_k + α (z − x_k) + (1 − α)(x_k − x_{k−1})),  α = 0.75
  (the first step has no momentum);
* checkpoints w_j = ⌈p_j · n⌉ with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06);
* at a checkpoint the step halves and the iterate returns to the best point when fewer than
  ρ = 0.75 of the steps since the last checkpoint raised f (condition 1), or when neither the step
  nor the best value changed since the last checkpoint (condition 2);
* the best point seen is returned.

``steps`` counts the objective's gradients (one at the start and one after each update), so APGD
with the presets of PGD costs exactly as many codec gradients as PGD.

Budget: L∞ — ‖x' − x‖∞ ≤ eps, x' ∈ [0,1]; start drawn uniformly in the eps-ball (seeded). On an
8-bit x, x' is returned on the 8-bit grid inside the budget (as PGD).

Arguments:
    codec, objective, proxy, seed: see :class:`~pytest_nicrobust.attacks.base.Attack`.
    eps: L∞ bound (default 7/255).  steps: objective gradients (12).  alpha: accepted for PGD's
    presets and ignored (APGD sets its own step, 2·eps at first).
    momentum: α (0.75).  rho: ρ (0.75).

Shapes: x (N,3,H,W) in [0,1] -> x' of the same shape and dtype.

Example:
    >>> x_adv = APGD(codec, eps=7/255, steps=12, seed=1)(x)
"""

from __future__ import annotations

import math

import torch

from .base import Attack, linf_8bit, linf_violation, project_linf
from .constraints import Best


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step (Croce & Hein's schedule for ``steps`` iterations)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    marks = (math.ceil(v * steps - 1e-9) for v in p[1:])  # 0.57 * 100 is 57, not 57.000001
    return sorted({w for w in marks if w < steps})


class APGD(Attack):
    name = "apgd"
    warm_starts = True

    def __init__(self, codec, *, eps=7 / 255, steps=12, alpha=None, momentum=0.75, rho=0.75, **kwargs):
        super().__init__(codec, **kwargs)
        if eps < 0 or steps < 1 or not 0 <= momentum <= 1 or not 0 < rho <= 1:
            raise ValueError(
                f"{self.name}: need eps >= 0, steps >= 1, 0 <= momentum <= 1, 0 < rho <= 1 "
                f"(got {eps}, {steps}, {momentum}, {rho})"
            )
        self.eps, self.steps, self.momentum, self.rho = float(eps), int(steps), float(momentum), float(rho)

    def budget_violation(self, x, x_adv):
        return linf_violation(x, x_adv, self.eps)

    def perturb(self, x):
        rec_clean = self.reference(x)
        n = x.shape[0]
        shape = (n,) + (1,) * (x.ndim - 1)
        if self.warm_start is not None:
            x_k = project_linf(self.warm_start.to(x), x, self.eps)
        else:
            x_k = project_linf(x + self.uniform(x, -self.eps, self.eps), x, self.eps)
        value, grad = self.gradient(x, x_k, rec_clean)
        best = Best(x_k)
        best.update(x_k, value)
        best_grad = grad  # the gradient at each image's best point: a restart there costs no gradient
        eta = torch.full((n,), 2 * self.eps, dtype=x.dtype, device=x.device)
        x_prev, last = x_k, value.double()
        raised = torch.zeros(n, dtype=torch.long, device=x.device)  # steps that raised f since the last checkpoint
        marks = checkpoints(self.steps - 1)
        mark, eta_at_mark, best_at_mark = 0, eta.clone(), best.value.clone()
        for k in range(1, self.steps):
            z = project_linf(x_k + eta.view(shape) * grad.sign(), x, self.eps)
            a = 1.0 if k == 1 else self.momentum
            x_prev, x_k = x_k, project_linf(x_k + a * (z - x_k) + (1 - a) * (x_k - x_prev), x, self.eps)
            value, grad = self.gradient(x, x_k, rec_clean)
            raised += (value.double() > last).long()
            last = value.double()
            improved = (value.double() > best.value).view(shape)
            best_grad = torch.where(improved, grad, best_grad)
            best.update(x_k, value)
            if k in marks:
                stalled = raised.double() < self.rho * (k - mark)  # condition 1
                stuck = (eta == eta_at_mark) & (best.value == best_at_mark)  # condition 2
                halve = stalled | stuck
                restart = halve.view(shape)
                eta = torch.where(halve, eta / 2, eta)
                x_k = torch.where(restart, best.x, x_k)
                x_prev = torch.where(restart, best.x, x_prev)
                grad = torch.where(restart, best_grad, grad)
                last = torch.where(halve, best.value, last)
                mark, eta_at_mark, best_at_mark, raised = k, eta.clone(), best.value.clone(), raised * 0
        return linf_8bit(x, best.x, self.eps)
