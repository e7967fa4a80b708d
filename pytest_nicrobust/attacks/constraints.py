"""Budget helpers shared by the attacks: L2/RMSE projection (clamp- and 8-bit-aware), best iterate.

Clamping x + d to [0,1] never increases |d| per pixel when x is in [0,1], so a perturbation
scaled into an L2 (MSE/RMSE) ball stays inside it after clamping. Rounding to 8 bits can
increase it: :func:`fit_rmse` therefore returns, when ``quantize`` is true, an image already
on the 8-bit grid (the runner's own rounding is then a no-op) whose RMSE to x is within the
budget, shrinking the perturbation by bisection where rounding pushed it over.
"""

from __future__ import annotations

import torch

# relative slack kept under the budget so float32 storage never tips a value over it
SLACK = 1e-5


def rms(d: torch.Tensor) -> torch.Tensor:
    """Root mean square per image, computed in float64."""
    return d.double().pow(2).flatten(1).mean(dim=1).sqrt()


def _view(v, like):
    return v.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def clamp_delta(x, d):
    return (x + d).clamp(0, 1) - x


def shrink_to_rmse(x, d, budget):
    """Scale each image's perturbation down (never up) so that RMSE(x, clamp(x+d)) <= budget."""
    d = clamp_delta(x, d)
    scale = (budget * (1 - SLACK) / rms(d).clamp_min(1e-30)).clamp(max=1.0)
    return d * _view(scale, d)  # x + s*d is a convex combination of two images in [0,1]


def rescale_to_rmse(x, d, budget, iters=4):
    """Move each perturbation onto the level set RMSE = budget (up or down), clamp-aware.

    Clamping loses some energy; a few rounds of re-scaling recover most of it. The result
    is always <= budget.
    """
    for _ in range(iters):
        d = clamp_delta(x, d)
        d = d * _view(budget / rms(d).clamp_min(1e-30), d)
    return shrink_to_rmse(x, d, budget)


def round8(x):
    return torch.round(x.clamp(0, 1) * 255) / 255


@torch.no_grad()
def fit_rmse(x, x_adv, budget, quantize=True, iters=14):
    """x_adv inside RMSE(x, x_adv) <= budget; on the 8-bit grid when ``quantize``.

    Per image: take x + s*(x_adv - x) rounded to 8 bits with the largest s in [0, 1]
    (bisection) that keeps the budget. If not even s = 0 fits (x itself off the 8-bit grid
    and a budget below its rounding error), the unrounded projection is returned instead.
    """
    d = shrink_to_rmse(x, x_adv - x, budget)
    if not quantize:
        return x + d
    limit = budget * (1 - SLACK)
    lo = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    hi = torch.ones_like(lo)
    ok_full = rms(round8(x + d) - x) <= limit
    lo = torch.where(ok_full, hi, lo)
    for _ in range(iters):
        mid = (lo + hi) / 2
        ok = rms(round8(x + d * _view(mid, d)) - x) <= limit
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    out = round8(x + d * _view(lo, d))
    fits = rms(out - x) <= limit
    return torch.where(_view(fits, x).bool(), out, x + d)


class Best:
    """Keeps, per image, the iterate with the highest objective seen so far."""

    def __init__(self, x):
        self.x = x.detach().clone()
        self.value = torch.full((x.shape[0],), -float("inf"), dtype=torch.float64, device=x.device)

    def update(self, x_adv, value):
        """``x_adv`` is kept by reference where every image improved: the callers never write into it."""
        value = value.detach().double()
        better = value > self.value
        if not bool(better.any()):
            return
        self.value = torch.where(better, value, self.value)
        if bool(better.all()):  # the common case; a whole-image select would cost one pass per step
            self.x = x_adv.detach()
        else:
            self.x = torch.where(_view(better, x_adv).bool(), x_adv.detach(), self.x)


def adam_ascent(param, lr, steps, evaluate, project, start, record=None):
    """Adam on ``param`` to raise the per-image score; returns the best iterate per image.

    ``evaluate()`` gives ``(x_adv, score)`` for the current ``param``; ``project()`` puts
    ``param`` back inside its constraint after each step (run without grad). ``steps + 1``
    iterates are scored, so the last step is not wasted; ``start`` is kept for an image
    where no iterate beats it; ``record(score)`` is called with every score (the loss curve). A
    NaN or infinite score or gradient raises :class:`~pytest_nicrobust.attacks.base.AttackNonFiniteError`
    (never a silently weaker attack).
    """
    from .base import check_finite_step

    opt = torch.optim.Adam([param], lr=lr)
    best = Best(start)
    for step in range(steps + 1):
        with torch.set_grad_enabled(step < steps):  # the last iterate is only scored: no graph
            x_adv, score = evaluate()
        check_finite_step("objective", step, score if score.ndim else score.reshape(1))
        if record is not None:
            record(score)
        best.update(x_adv, score)
        if step == steps:
            break
        opt.zero_grad(set_to_none=True)
        if score.requires_grad:  # else no path back to the input: Adam leaves the parameter where it is
            (-score.sum()).backward()
        if param.grad is not None:
            grad = param.grad if param.grad.shape[:1] == score.shape[:1] else param.grad.reshape(1, -1)
            check_finite_step("objective's gradient", step, grad)
        opt.step()
        with torch.no_grad():
            project()
    return best.x
