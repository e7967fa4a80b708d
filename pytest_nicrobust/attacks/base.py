"""Shared machinery of all attacks: objective, gradient, seeding, projection."""

from __future__ import annotations

import torch

from .objectives import evaluate_objective
from .presets import PROXIES, parse_objective


class Attack:
    """Base class. Subclasses implement :meth:`perturb` (x -> x_adv, batched).

    Arguments common to every attack:
        codec: a :class:`~pytest_nicrobust.codecs.base.Codec`.
        objective: ``"recon_shift"`` etc., optionally ``":ycbcr"`` / ``":luma"``.
        proxy: quantisation proxy for gradients, ``"noise"`` or ``"ste"``.
        seed: every random draw of the attack (start, noise proxy) comes from it.
    """

    name = "attack"

    def __init__(self, codec, *, objective: str = "recon_shift", proxy: str = "noise", seed: int = 0):
        self.codec = codec
        self.objective, self.color = parse_objective(objective)
        if proxy not in PROXIES:
            raise ValueError(f"unknown proxy {proxy!r}; choose from {PROXIES}")
        self.proxy = proxy
        self.seed = int(seed)
        self.generator: torch.Generator | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images (N,3,H,W), got shape {tuple(x.shape)}")
        self.generator = torch.Generator(device=x.device).manual_seed(self.seed)
        with torch.enable_grad():
            x_adv = self.perturb(x.detach())
        return x_adv.detach().clamp(0, 1).to(x.dtype)

    def perturb(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------

    @torch.no_grad()
    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """C(x) with rounded latents, the target the shift objectives move away from."""
        return self.codec.forward(x, proxy="ste").x_hat

    def objective_value(self, x, x_adv, rec_clean) -> torch.Tensor:
        views = self.codec.eot_views(self.generator)
        if views is None:
            return self._objective_on(self.codec, x, x_adv, rec_clean)
        # EOT: the mean over random views of the codec, each against its own clean C(x)
        values = []
        for view in views:
            with torch.no_grad():
                reference = view.forward(x, proxy="ste").x_hat
            values.append(self._objective_on(view, x, x_adv, reference))
        return torch.stack(values).mean(dim=0)

    def _objective_on(self, codec, x, x_adv, rec_clean) -> torch.Tensor:
        out = codec.forward(x_adv, proxy=self.proxy, generator=self.generator)
        return evaluate_objective(self.objective, self.color, x, x_adv, rec_clean, out.x_hat, out.bpp)

    def gradient(self, x, x_adv, rec_clean) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective per image, d objective / d x_adv)."""
        x_adv = x_adv.detach().requires_grad_(True)
        value = self.objective_value(x, x_adv, rec_clean)
        (grad,) = torch.autograd.grad(value.sum(), x_adv)
        return value.detach(), grad

    def uniform(self, like: torch.Tensor, low: float, high: float) -> torch.Tensor:
        r = torch.rand(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)
        return low + (high - low) * r


def project_linf(x_adv, x, eps):
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
