"""A user's thresholds file extends the shipped limits unless it says ``extends = false``, and every
shipped gate it turns off is named."""

from __future__ import annotations

import pytest

from pytest_nicrobust.config.errors import ThresholdsError
from pytest_nicrobust.config.thresholds import DEFAULT_PATH, load_thresholds, match_labels

CASE = {
    "codec": "ours",
    "bitrate": 3,
    "attack": "pgd[eps7]",
    "objective": "recon_error",
    "dataset": "d",
    "defense": "none",
}
TRANSFER = {**CASE, "target": "jpeg"}
RANDOM = {**CASE, "codec": "random-ours"}


def _load(tmp_path, text):
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    return load_thresholds(str(path))


def _limits(thresholds, params, mode="undefended"):
    """The limits that gate such a test: transfer_* ones for a transfer cell, the others for a case."""
    limits = thresholds.limits_for(match_labels(params, mode)).items()
    return {m: lim.value for m, lim in limits if m.startswith("transfer_") == (mode == "transfer")}


def test_your_keys_win_and_the_shipped_limits_stay(tmp_path):
    shipped = load_thresholds(DEFAULT_PATH, is_default=True)
    mine = _load(tmp_path, "[defaults]\ndelta_psnr = 2.0\n")
    assert _limits(mine, CASE) == {**_limits(shipped, CASE), "delta_psnr": 2.0}
    assert _limits(mine, TRANSFER, "transfer") == _limits(shipped, TRANSFER, "transfer") != {}
    assert _limits(mine, RANDOM) == {}  # the shipped random-init table still turns quality gates off
    assert mine.regression_for(match_labels(CASE)) == shipped.regression_for(match_labels(CASE)) != {}
    assert (
        mine.dropped == [] and mine.limits_for(match_labels(CASE))["delta_psnr"].source == "thresholds.toml [defaults]"
    )


def test_extends_false_starts_from_nothing_and_names_what_it_drops(tmp_path):
    mine = _load(tmp_path, "extends = false\n\n[defaults]\ndelta_psnr = 2.0\n")
    assert _limits(mine, CASE) == {"delta_psnr": 2.0} and _limits(mine, TRANSFER, "transfer") == {}
    assert mine.regression_for(match_labels(CASE)) == {}
    assert "transfer_delta_psnr (extends = false)" in mine.dropped
    assert "[regression] delta_psnr (extends = false)" in mine.dropped
    assert "delta_psnr (extends = false)" not in mine.dropped  # it gates that one itself


def test_a_table_of_the_same_name_replaces_the_shipped_one(tmp_path):
    mine = _load(
        tmp_path,
        '[defaults]\ndelta_vmaf = false\n\n[overrides.transfer]\nmatch = { mode = "transfer" }\ntransfer_delta_psnr = 3.0\n',
    )
    assert _limits(mine, TRANSFER, "transfer") == {"transfer_delta_psnr": 3.0}
    assert "delta_vmaf" not in _limits(mine, CASE)
    assert set(mine.dropped) == {
        "delta_vmaf (set to false)",
        "transfer_bitrate_increase ([overrides.transfer] replaced)",
        "transfer_delta_vmaf ([overrides.transfer] replaced)",
    }


def test_extends_must_be_a_boolean(tmp_path):
    with pytest.raises(ThresholdsError, match=r"thresholds.toml: extends: expected true or false, got 'no'"):
        _load(tmp_path, 'extends = "no"\n')


def test_shipped_gates_on_metrics_not_computed_are_set_aside_yours_are_refused(tmp_path):
    mine = _load(tmp_path, "[defaults]\ndelta_psnr = 2.0\n")
    mine.check_computed(("psnr", "mse"))
    assert {"delta_msssim", "delta_vmaf", "transfer_delta_vmaf"} <= set(mine.not_computed)
    assert "delta_vmaf" not in _limits(mine, CASE)
    shipped = load_thresholds(DEFAULT_PATH, is_default=True)
    shipped.check_computed(("psnr",))  # no thresholds.toml and --nicrobust-metrics psnr: runs, and says so
    assert "delta_mse" in shipped.not_computed
    with pytest.raises(ThresholdsError, match="delta_vmaf gates vmaf, which this run does not compute"):
        _load(tmp_path, "[defaults]\ndelta_vmaf = 10.0\n").check_computed(("psnr",))
