"""A NaN or infinite objective or gradient stops the attack with a message naming attack, step and
image: never a silently weaker x' (a NaN step is never "better", so the attack kept its start)."""

from __future__ import annotations

import pytest
import torch

from pytest_nicrobust.attacks import build_attack
from pytest_nicrobust.attacks.base import AttackNonFiniteError
from pytest_nicrobust.codecs.base import Codec, CodecInfo


class Smooth(Codec):
    """x_hat = 0.9 x (+ NaN for the images in ``nan``, from forward step ``after`` on); bits from the pixels."""

    def __init__(self, nan=(), after=0, what="x_hat"):
        super().__init__(CodecInfo("smooth", "toy", 1, None, random_init=True), "cpu")
        self.nan, self.after, self.what, self.calls = set(nan), after, what, 0

    def _forward_padded(self, x, proxy, generator):
        x_hat, bits = 0.9 * x, (x * 100).flatten(1).sum(1)
        if self.calls >= self.after and self.nan:
            mask = torch.zeros(x.shape[0], dtype=torch.bool)
            mask[list(self.nan)] = True
            if self.what == "x_hat":
                x_hat = torch.where(mask.view(-1, 1, 1, 1), torch.full_like(x_hat, float("nan")), x_hat)
            else:  # finite value, infinite gradient: sqrt at 0, on those images only
                x_hat = torch.cat(
                    [
                        x_hat[i : i + 1] + ((x[i : i + 1] - x[i : i + 1].detach()).abs().sqrt() if i in self.nan else 0)
                        for i in range(x.shape[0])
                    ]
                )
        self.calls += 1
        return x_hat, bits

    def _roundtrip_padded(self, x):
        return 0.9 * x, [100] * x.shape[0]


X = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "attack, preset",
    [("pgd", "eps7"), ("ifgsm", "eps7"), ("madc", "rmse7"), ("ftda", "tau6e-4"), ("ssah", "lr0.2"), ("cadv", "fast")],
)
def test_a_nan_objective_names_attack_step_and_image(attack, preset):
    a = build_attack(attack, Smooth(nan=[1], after=2), preset, "recon_error", 0, "noise", {"steps": 4})
    with pytest.raises(AttackNonFiniteError) as info:
        a(X)
    text = str(info.value)
    assert f"attack {attack}" in text and "objective is NaN or infinite" in text and "image(s) [1]" in text, text
    assert "step " in text and info.value.images == [0, 1, 2]


def test_an_infinite_gradient_is_named_too():
    a = build_attack("pgd", Smooth(nan=[2], what="grad"), "eps7", "recon_error", 0, "ste", {"steps": 3})
    with pytest.raises(
        AttackNonFiniteError,
        match=r"attack pgd .*objective's gradient is NaN or infinite at step 0 "
        r"for image\(s\) \[2\]",
    ):
        a(X)


def test_a_finite_attack_is_untouched():
    x_adv = build_attack("pgd", Smooth(), "eps7", "recon_error", 0, "noise", {"steps": 3})(X)
    assert torch.isfinite(x_adv).all() and (x_adv - X).abs().max() > 0
