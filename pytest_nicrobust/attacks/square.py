"""Square Attack: a gradient-free attack that queries the real codec.

Maksym Andriushchenko, Francesco Croce, Nicolas Flammarion, Matthias Hein, "Square Attack: a
query-efficient black-box adversarial attack via random search", ECCV 2020 (arXiv 1912.00049).
Random search over the corners of the L∞ ball: start from vertical stripes of ±eps, then at each
query move one randomly placed square window to new random corners (±eps per colour channel) and
keep the change where the objective rose. The window shrinks on a fixed schedule of the query
budget. Part of AutoAttack for the same reason it is here: it needs no gradient, so a codec whose
differentiable pass misleads the white-box attacks (gradient masking) cannot hide from it.

Queries go to what is measured: the real round trip (encode to bytes, decode), on the 8-bit x'
an attacker would deliver, never to the differentiable pass, which is the part that could be
wrong. The objective is the one the white-box attacks use, on the decoded image and the real
bits (``recon_error``: MSE(C(x'), x'); ``bitrate``: the real bpp; ...).

Budget: L∞ — ‖x' − x‖∞ ≤ eps, x' ∈ [0,1]; every x' it tries is x moved by ±eps per pixel (clipped
to [0,1]); on an 8-bit x by ±the whole levels within eps, so every query is an 8-bit image.

Arguments:
    codec, objective, seed: see :class:`~pytest_nicrobust.attacks.base.Attack` (``proxy`` is
    ignored: nothing is differentiated).
    eps: L∞ bound (default 7/255).  queries: round trips per image after the first (100).
    p_init: the first window's share of the image's pixels (0.1), halved on the paper's schedule.

Shapes: x (N,3,H,W) in [0,1] -> x' of the same shape and dtype.

Example:
    >>> x_adv = Square(codec, eps=7/255, queries=100, seed=0)(x)
"""

from __future__ import annotations

import math

import torch

from .base import Attack, linf_violation, on_8bit_grid
from .objectives import evaluate_objective

# The paper's schedule, for 10,000 queries: after these many queries the window's share halves again.
HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def window_share(p_init: float, query: int, queries: int) -> float:
    """The share of pixels the window covers at ``query`` of ``queries`` (the schedule rescaled)."""
    at = int(query / max(queries, 1) * 10000)
    return p_init / 2 ** sum(at > h for h in HALVINGS)


class Square(Attack):
    name = "square"
    warm_starts = True

    def __init__(self, codec, *, eps=7 / 255, queries=100, p_init=0.1, **kwargs):
        super().__init__(codec, **kwargs)
        if eps < 0 or queries < 0 or not 0 < p_init <= 1:
            raise ValueError(
                f"{self.name}: need eps >= 0, queries >= 0, 0 < p_init <= 1 (got {eps}, {queries}, {p_init})"
            )
        self.eps, self.queries, self.p_init = float(eps), int(queries), float(p_init)

    def budget_violation(self, x, x_adv):
        return linf_violation(x, x_adv, self.eps)

    @torch.no_grad()
    def loss(self, x, x_adv, rec_clean):
        """The objective on the real round trip: one query per image."""
        rt = self.codec.roundtrip(x_adv)
        value = evaluate_objective(self.objective, self.color, x, x_adv, rec_clean, rt.x_hat.to(x.dtype), rt.bpp.to(x))
        self.record(value)
        return value.double()

    def signs(self, shape) -> torch.Tensor:
        return (
            torch.randint(0, 2, shape, generator=self.generator, device=self.generator.device).to(torch.float32) * 2 - 1
        )

    @torch.no_grad()
    def perturb(self, x):
        n, c, h, w = x.shape
        grid = on_8bit_grid(x)
        eps = math.floor(self.eps * 255 + 1e-6) / 255 if grid else self.eps  # corners on the 8-bit grid

        def snap(v):  # x + k/255 in float32 is not exactly (255 x + k)/255: back onto the grid
            return torch.round(v * 255) / 255 if grid else v

        rec_clean = self.codec.roundtrip(x).x_hat.to(x.dtype) if self.needs_reference else None
        if self.warm_start is not None:  # a smaller budget's x', then corners of this budget window by window
            best = snap(torch.min(torch.max(self.warm_start.to(x), x - eps), x + eps).clamp(0, 1))
        else:
            delta = eps * self.signs((n, c, 1, w)).to(x).expand(n, c, h, w)  # vertical stripes
            best = snap((x + delta).clamp(0, 1))
        best_value = self.loss(x, best, rec_clean)
        for q in range(self.queries):
            side = max(1, min(h - 1, w - 1, round(math.sqrt(window_share(self.p_init, q, self.queries) * h * w))))
            trial = best.clone()
            for i in range(n):  # each image its own window and corners
                top = int(torch.randint(0, h - side + 1, (1,), generator=self.generator, device=self.generator.device))
                left = int(torch.randint(0, w - side + 1, (1,), generator=self.generator, device=self.generator.device))
                window = (slice(None), slice(top, top + side), slice(left, left + side))
                corner = snap((x[i][window] + eps * self.signs((c, 1, 1)).to(x)).clamp(0, 1))
                if torch.equal(corner, best[i][window]):  # the same corners again: flip them
                    corner = snap((x[i][window] - (corner - x[i][window])).clamp(0, 1))
                trial[i][window] = corner
            value = self.loss(x, trial, rec_clean)
            better = value > best_value
            best = torch.where(better.view(n, 1, 1, 1), trial, best)
            best_value = torch.where(better, value, best_value)
        return best
