"""Suite and thresholds parsing: the combinations, the glob matching, the error messages."""

from __future__ import annotations

import re

import pytest

from pytest_nicrobust.config.suite import SuiteError, parse_suite
from pytest_nicrobust.config.thresholds import ThresholdsError, load_thresholds, match_labels
from pytest_nicrobust.seeding import derive_seed

SUITE = """
defenses = ["none"]
images = 2
crop = 64

[[codecs]]
model = "bmshj2018-hyperprior"
weights = "nicrobust"
qualities = [1, 3]

[[codecs]]
model = "mbt2018-mean"
weights = "random"
qualities = [2]

[[attacks]]
name = "pgd"
presets = ["eps7", "eps5"]
steps = 3

[[datasets]]
name = "kodak"
images = 4

[[datasets]]
name = "skimage-photos"
"""


def _suite(tmp_path, text=SUITE):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return parse_suite(str(path), display="s.toml")


def test_spec_string_names_one_codec(tmp_path):
    text = SUITE.replace(
        'model = "mbt2018-mean"\nweights = "random"\nqualities = [2]', 'spec = "nicrobust:mbt2018-mean@q2"'
    )
    codecs = {(c.codec.model, c.codec.weights, c.codec.quality) for c in _suite(tmp_path, text).cases}
    assert ("mbt2018-mean", "nicrobust", 2) in codecs
    with pytest.raises(SuiteError, match=r"codecs\[1\].spec: expected"):
        _suite(tmp_path, text.replace("@q2", "-q2"))


def test_every_combination_is_one_case(tmp_path):
    cases = _suite(tmp_path).cases
    assert len(cases) == 3 * 2 * 2
    names = {c.name for c in cases}
    assert "bmshj2018-hyperprior[q3-pgd-eps5+steps:3-recon_error-kodak-none]" in names
    assert "random-mbt2018-mean[q2-pgd-eps7+steps:3-recon_error-skimage-photos-none]" in names
    kodak = next(c for c in cases if c.dataset.name == "kodak" and c.attack.preset == "eps5")
    assert (kodak.dataset.images, kodak.dataset.crop) == (4, 64)
    assert kodak.attack.params == {"eps": 5 / 255, "alpha": 2 / 255, "steps": 3}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("qualities = [1, 3]", "qualities = [1, 9]"),
            "s.toml: codecs[0].qualities: qualities of CompressAI models are integers 1..8, got 9",
        ),
        (('model = "mbt2018-mean"', 'model = "elic"'), "s.toml: codecs[1].model: unknown model 'elic'"),
        (('weights = "nicrobust"', 'weights = "ckpt/none.pt"'), "s.toml: codecs[0].weights: checkpoint"),
        (("images = 4", "images = 0"), "s.toml: datasets[0].images: must be a positive integer, got 0"),
        (('defenses = ["none"]', 'defenses = ["moat"]'), "s.toml: defenses: unknown defense 'moat'"),
        (("crop = 64", "crop = 64\nbudget = 3"), "s.toml: suite.budget: unknown key"),
        (("steps = 3", "steps = 3\ncolour = 1"), "s.toml: attacks[0].colour: unknown key"),
        (("[[datasets]]", "[[datasets]\n"), "s.toml: not valid TOML"),
        (("crop = 64", "crop = 7"), "s.toml: crop: 7 px is too small for msssim (it needs images of at least 33x33)"),
        (("qualities = [1, 3]", "qualities = []"), "s.toml: codecs[0].qualities: must not be empty"),
        (('defenses = ["none"]', "defenses = []"), "s.toml: defenses: must not be empty"),
        (('model = "mbt2018-mean"', 'model = "mbt2018-mean"\nname = "my codec"'), "s.toml: codecs[1].name: 'my codec'"),
        (
            ('weights = "random"', 'spec = "random:mbt2018-mean@q2"'),
            "s.toml: codecs[1].spec: give either spec or model, qualities",
        ),
    ],
)
def test_suite_errors_name_file_and_key(tmp_path, change, message):
    with pytest.raises(SuiteError) as info:
        _suite(tmp_path, SUITE.replace(*change, 1))
    assert message in str(info.value)


THRESHOLDS = """
[defaults]
delta_psnr = 3.0
bitrate_increase = 0.5

[overrides.pgd-q3]
match = { codec = "bmshj2018-hyperprior[q3]", attack = "pgd" }
delta_psnr = 5.0

[overrides.no-rate-gate-on-kodak]
match = { dataset = "kod*" }
bitrate_increase = false
"""


def _params(codec="bmshj2018-hyperprior", q="q3", attack="pgd[eps7]", dataset="kodak"):
    return match_labels(
        {
            "codec": codec,
            "bitrate": q,
            "attack": attack,
            "objective": "recon_shift",
            "dataset": dataset,
            "defense": "none",
        }
    )


def test_limits_resolve_in_order_with_literal_brackets(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text(THRESHOLDS)
    t = load_thresholds(str(path))
    limits = t.limits_for(_params())
    assert limits["delta_psnr"].value == 5.0
    assert limits["delta_psnr"].source == "thresholds.toml [overrides.pgd-q3]"
    assert "bitrate_increase" not in limits
    other = t.limits_for(_params(q="q1", dataset="bsds"))
    assert other["delta_psnr"].source == "thresholds.toml [defaults]"
    assert other["bitrate_increase"].value == 0.5
    assert t.limits_for(_params(q="q", dataset="bsds"))["delta_psnr"].value == 3.0  # "[q3]" is not a character class


@pytest.mark.parametrize(
    "text, message",
    [
        ("[defaults]\ndelta_psnrr = 1\n", "defaults.delta_psnrr: unknown metric"),
        ("[defaults]\ndelta_psnr = 'high'\n", "defaults.delta_psnr: expected a finite number or false"),
        ("[overrides.x]\nmatch = { codek = 'a' }\n", "overrides.x.match.codek: unknown key"),
        ("[limits]\n", "limits: unknown table"),
        ("[overrides.x]\nmatch = { mode = 'adaptve' }\n", "overrides.x.match.mode: 'adaptve' matches no mode"),
        ("[overrides.x]\nmatch = { attack = 'pgdd*' }\n", "overrides.x.match.attack: 'pgdd*' matches no attack"),
        ("[defaults]\ndelta_psnr = nan\n", "defaults.delta_psnr: expected a finite number or false"),
    ],
)
def test_thresholds_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    with pytest.raises(ThresholdsError, match=re.escape(message)):
        load_thresholds(str(path))


def test_seed_depends_on_run_seed_and_id_only():
    assert derive_seed(0, "a.toml::x") == derive_seed(0, "a.toml::x")
    assert (
        len(
            {
                derive_seed(0, "a.toml::x"),
                derive_seed(1, "a.toml::x"),
                derive_seed(0, "a.toml::y"),
                derive_seed(0, "a.toml::x", "defense"),
            }
        )
        == 4
    )
