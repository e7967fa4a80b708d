"""The plugin's PGD against the loop a codec team would write, on a shipped codec and real photos:
an independent reference for the attack machinery (objective, proxy, projection, 8-bit delivery)."""

from __future__ import annotations

import torch

from pytest_nicrobust.attacks import build_attack
from pytest_nicrobust.attacks.noise import GaussianNoise
from pytest_nicrobust.codecs.base import round_to_8bit


def plain_pgd(net, x, eps=7 / 255, alpha=2 / 255, steps=12, seed=0):
    """The loop a codec team would write: entropy models in training (noise) mode, maximise MSE(C(x'), x')."""
    from compressai.entropy_models import EntropyModel

    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, EntropyModel):
            m.train()
    try:
        x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = (net(x_adv)["x_hat"] - x_adv).pow(2).mean()
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
    finally:
        net.eval()
    return round_to_8bit(x_adv)


def _delta_psnr(codec, x, x_adv):
    from pytest_nicrobust.metrics.deltas import evaluate

    rows = evaluate(x, x_adv, codec.roundtrip(x), codec.roundtrip(x_adv), ("psnr",))
    return sum(r["delta_psnr"] for r in rows) / len(rows)


def test_pgd_matches_a_plain_pgd_loop_on_a_shipped_codec():
    """The default objective reaches >= 0.95x the ΔPSNR of the plain loop (real bitstreams), on real photos."""
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, to_tensor

    codec = load_codec("bmshj2018-hyperprior", "nicrobust", 3)
    x = to_tensor(load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), 2, 128))
    ours = _delta_psnr(codec, x, build_attack("pgd", codec, "eps7", "recon_error", 0)(x))
    plain = max(_delta_psnr(codec, x, plain_pgd(codec.model, x, seed=s)) for s in range(2))
    noise = _delta_psnr(codec, x, GaussianNoise(codec, eps=7 / 255, seed=0)(x))
    assert ours >= 0.95 * plain and plain > 1.5 * noise, (ours, plain, noise)
