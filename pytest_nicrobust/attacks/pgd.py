"""PGD: projected gradient descent with a random start.

Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018 (arXiv 1706.06083).

Budget: L∞ — ‖x' − x‖∞ ≤ eps, x' ∈ [0,1]; start drawn uniformly in the eps-ball. On an 8-bit
x, x' is returned on the 8-bit grid inside the budget (as I-FGSM).

Arguments:
    codec, objective, proxy, seed: see :class:`~pytest_nicrobust.attacks.base.Attack`.
    eps: L∞ bound (default 7/255).  alpha: step size (2/255).  steps: iterations (12).

Shapes: x (N,3,H,W) in [0,1] -> x' of the same shape and dtype.

Example:
    >>> x_adv = PGD(codec, eps=7/255, alpha=2/255, steps=12, seed=1)(x)
"""

from __future__ import annotations

from .base import project_linf
from .ifgsm import IFGSM


class PGD(IFGSM):
    name = "pgd"

    def start(self, x):
        if self.warm_start is not None:
            return self.warm(x)
        return project_linf(x + self.uniform(x, -self.eps, self.eps), x, self.eps)
