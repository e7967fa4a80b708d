"""I-FGSM: iterative fast gradient sign method.

Kurakin, Goodfellow, Bengio, "Adversarial examples in the physical world", ICLR workshop 2017
(arXiv 1607.02533).

Budget: L∞ — ‖x' − x‖∞ ≤ eps, x' ∈ [0,1]; on an 8-bit x, x' is returned on the 8-bit grid
inside the budget (whole levels), so the image that is encoded keeps it exactly.

Arguments:
    codec, objective, proxy, seed: see :class:`~pytest_nicrobust.attacks.base.Attack`.
    eps: L∞ bound (default 7/255).  alpha: step size (2/255).  steps: iterations (12).

Shapes: x (N,3,H,W) in [0,1] -> x' of the same shape and dtype.

Example:
    >>> x_adv = IFGSM(codec, eps=7/255, alpha=2/255, steps=12)(x)
"""

from __future__ import annotations

from .base import Attack, linf_8bit, linf_violation, project_linf


class IFGSM(Attack):
    name = "ifgsm"
    random_start = False
    warm_starts = True

    def __init__(self, codec, *, eps=7 / 255, alpha=2 / 255, steps=12, **kwargs):
        super().__init__(codec, **kwargs)
        if eps < 0 or alpha <= 0 or steps < 0:
            raise ValueError(f"{self.name}: need eps >= 0, alpha > 0, steps >= 0 (got {eps}, {alpha}, {steps})")
        self.eps, self.alpha, self.steps = float(eps), float(alpha), int(steps)

    def start(self, x):
        return self.warm(x) if self.warm_start is not None else x.clone()

    def warm(self, x):
        """The given x' (a smaller budget's result) projected into this budget."""
        return project_linf(self.warm_start.to(x), x, self.eps)

    def budget_violation(self, x, x_adv):
        return linf_violation(x, x_adv, self.eps)

    def perturb(self, x):
        rec_clean = self.reference(x)
        x_adv = self.start(x)
        for _ in range(self.steps):
            _, grad = self.gradient(x, x_adv, rec_clean)
            x_adv = project_linf(x_adv + self.alpha * grad.sign(), x, self.eps)
        return linf_8bit(x, x_adv, self.eps)
