"""Defenses: exact inverses, common random numbers, EOT draws, self-ensemble, and a plugin run."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers import write_suite, write_thresholds

from pytest_nicrobust.codecs.base import Codec, CodecInfo, round_to_8bit
from pytest_nicrobust.defenses import (
    BUILTIN_DEFENSE_NAMES,
    BUILTIN_DEFENSES,
    DEFENSES,
    FRESH,
    DefendedCodec,
    JPEGPrecompression,
    SelfEnsemble,
    builtin_defense,
    fixture_name,
    register_defense,
)

REVERSIBLE = [n for n, d in BUILTIN_DEFENSES.items() if d.reversible and n != "self-ensemble"]
FAST = ["--nicrobust-metrics", "psnr,mse", "-p", "no:randomly", "--nicrobust-no-transfer"]


class ShiftCodec(Codec):
    """A toy codec that is not shift-equivariant: 0.9 x + a ramp along the width, 100 bytes per image."""

    multiple = 1

    def __init__(self):
        super().__init__(CodecInfo("toy", "toy", None, "none"))

    def _forward_padded(self, x, proxy, generator):
        ramp = torch.linspace(0, 0.1, x.shape[-1]).to(x)
        return x * 0.9 + ramp, torch.full((x.shape[0],), 800.0)

    def _roundtrip_padded(self, x):
        return self._forward_padded(x, "ste", None)[0], [100] * x.shape[0]


def _image(h=24, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return round_to_8bit(torch.rand((2, 3, h, w), generator=g))


def test_every_builtin_defense_is_registered_and_has_a_class():
    assert set(BUILTIN_DEFENSE_NAMES) == {"none", *BUILTIN_DEFENSES}
    assert all(n in DEFENSES for n in BUILTIN_DEFENSE_NAMES)


@pytest.mark.parametrize("name", REVERSIBLE)
def test_reversible_defenses_invert_exactly_on_non_square_images(name):
    defense, x = builtin_defense(name), _image()
    for seed in range(5):
        draw = defense.sample(torch.Generator().manual_seed(seed))
        y = defense.apply(x, draw)
        assert torch.equal(defense.invert(y, draw), x)
        if name != "random-ensemble":  # an ensemble draw may compose to the identity
            assert not torch.equal(y, x), f"{name} left the image unchanged"


@pytest.mark.parametrize("name", [n for n, d in BUILTIN_DEFENSES.items() if d.random])
def test_random_defenses_use_the_seeded_draw(name):
    defense = builtin_defense(name)
    draws = [defense.sample(torch.Generator().manual_seed(s)) for s in range(12)]
    assert draws[0] == defense.sample(torch.Generator().manual_seed(0))  # same seed, same draw
    assert len({repr(d) for d in draws}) > 1


def test_common_random_numbers_same_transform_for_x_and_x_adv():
    defense = builtin_defense("roll")
    codec = DefendedCodec(ShiftCodec(), defense, defense.sample(torch.Generator().manual_seed(3)))
    x = _image()
    a, b = codec.roundtrip(x), codec.roundtrip(x.clone())
    assert torch.equal(a.x_hat, b.x_hat)


def test_eot_takes_a_fresh_draw_per_call_from_the_attack_generator():
    codec, x = DefendedCodec(ShiftCodec(), builtin_defense("roll"), FRESH), _image()
    g = torch.Generator().manual_seed(0)
    outs = [codec.forward(x, "noise", g).x_hat for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_adaptive_attack_averages_over_fresh_draws_each_with_its_own_reference():
    from pytest_nicrobust.attacks import PGD

    defense = builtin_defense("roll")
    eot = DefendedCodec(ShiftCodec(), defense, FRESH, eot_samples=3)
    views = eot.eot_views(torch.Generator().manual_seed(0))
    assert len(views) == 3 and len({repr(v.draw) for v in views}) == 3
    assert DefendedCodec(ShiftCodec(), defense, views[0].draw).eot_views(torch.Generator()) is None
    x = _image()
    attack = PGD(eot, eps=4 / 255, alpha=1 / 255, steps=2, seed=5, objective="recon_shift")
    # the objective is the mean over the views, each against C(x) under the same draw
    attack.generator = torch.Generator().manual_seed(1)
    x_adv = x + 2 / 255
    value = attack.objective_value(x, x_adv, rec_clean=None)
    attack.generator = torch.Generator().manual_seed(1)
    expected = torch.stack(
        [
            ((v.forward(x_adv).x_hat - v.forward(x).x_hat) ** 2).flatten(1).mean(1)
            for v in eot.eot_views(attack.generator)
        ]
    ).mean(0)
    assert torch.allclose(value, expected)
    assert torch.equal(attack(x), PGD(eot, eps=4 / 255, alpha=1 / 255, steps=2, seed=5, objective="recon_shift")(x))


def test_jpeg_precompression_passes_gradients_straight_through():
    x = _image().requires_grad_(True)
    out = DefendedCodec(ShiftCodec(), JPEGPrecompression(quality=50)).forward(x)
    out.x_hat.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.9))


def test_blur_is_differentiable_and_costs_quality():
    codec = ShiftCodec()
    x = _image(32, 32)
    blurred = DefendedCodec(codec, builtin_defense("blur")).roundtrip(x).x_hat
    assert (blurred - x).abs().mean() > (codec.roundtrip(x).x_hat - x).abs().mean() * 0.5


def test_self_ensemble_keeps_the_best_variant_and_pays_three_bits():
    codec, x = ShiftCodec(), _image()
    plain, defended = codec.roundtrip(x), DefendedCodec(codec, SelfEnsemble()).roundtrip(x)
    err = lambda r: (r.x_hat - x).pow(2).flatten(1).mean(1)  # noqa: E731
    assert torch.all(err(defended) <= err(plain) + 1e-9)
    assert torch.allclose(defended.bpp - plain.bpp, torch.full((2,), 3.0 / (24 * 40), dtype=torch.float64))
    fwd = DefendedCodec(codec, SelfEnsemble()).forward(x.requires_grad_(True))
    fwd.x_hat.sum().backward()
    assert x.grad is not None


def test_register_defense_checks_the_name():
    register_defense("my-median")
    assert "my-median" in DEFENSES and fixture_name("my-median") == "nicrobust_defense_my_median"
    with pytest.raises(ValueError):
        register_defense("bad name")


# -- through the plugin ------------------------------------------------------------

CONFTEST = """
import pytest
from pytest_nicrobust.defenses import Defense
from pytest_nicrobust.defenses import register_defense

register_defense("half")


class Half(Defense):
    name, reversible = "half", False

    def apply(self, x, draw):
        return x * 0.5 + 0.25


@pytest.fixture
def nicrobust_defense_half():
    return Half()
"""


@pytest.fixture
def project(pytester, tiny_pt):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    (pytester.path / "conftest.py").write_text(CONFTEST)
    write_suite(pytester.path, extra='defenses = ["none", "roll", "jpeg", "half"]')
    return pytester


def test_defended_tests_report_both_modes_cost_and_gate_adaptive(project, tmp_path):
    write_thresholds(
        project.path,
        "[defaults]\ndelta_psnr = 100.0\n\n[overrides.adaptive-roll]\n"
        'match = { defense = "roll", mode = "adaptive" }\ndelta_psnr = 0.0\n',
    )
    out = tmp_path / "r.json"
    result = project.runpytest_subprocess("suites", "-k", "q1 and not worst", "--nicrobust-json", str(out), *FAST)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*delta_psnr [[]adaptive]*dB > limit 0 dB*overrides.adaptive-roll*"])
    tests = {t["name"]: t for t in json.loads(out.read_text())["tests"]}
    name = "tiny[q1-pgd-eps7+steps:2-recon_error-skimage-photos-{}]".format
    assert sorted(tests) == [name(d) for d in ("half", "jpeg", "none", "roll")]
    none, roll = tests[name("none")], tests[name("roll")]
    assert set(none["modes"]) == {"undefended"} and "defense" not in none
    assert set(roll["modes"]) == {"undefended", "non-adaptive", "adaptive"}
    assert {(g["metric"], g["mode"]) for g in roll["gates"]} == {
        ("delta_psnr", "non-adaptive"),
        ("delta_psnr", "adaptive"),
    }
    # the non-adaptive x' is the undefended one: same attack seed, made once (cache)
    assert roll["modes"]["undefended"]["mean"] == none["modes"]["undefended"]["mean"]
    assert roll["defense"]["draw"].startswith("roll (") and "cost_psnr" in roll["defense"]["cost"]
    half = tests[name("half")]
    assert half["defense"]["name"] == "half" and half["outcome"] == "passed"
