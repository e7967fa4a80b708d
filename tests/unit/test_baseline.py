"""verdict.baseline on its own: matching a test across runs, allowed changes, the run-level comparison."""

from __future__ import annotations

import json

import pytest

from pytest_nicrobust import NicrobustError
from pytest_nicrobust.config.regression import parse_allowed, parse_cli, parse_mapping
from pytest_nicrobust.config.thresholds import load_thresholds
from pytest_nicrobust.verdict.baseline import BaselineError, compare, load_baseline, match_key, run_comparison

PARAMS = {"codec": "ours-v1", "bitrate": "q3", "attack": "pgd[eps7]", "objective": "recon_error",
          "dataset": "kodak", "defense": "none"}


def _record(delta_psnr, codec="ours-v1", name="t1"):
    return {"id": name, "name": name, "kind": "case", "params": {**PARAMS, "codec": codec},
            "mean": {"delta_psnr": delta_psnr, "bitrate_increase": 0.02},
            "modes": {"undefended": {"mean": {"delta_psnr": delta_psnr, "bitrate_increase": 0.02}}}}


@pytest.fixture
def thresholds(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text("[defaults]\ndelta_psnr = 10\n")
    return load_thresholds(str(path))


def _baseline(tmp_path, records, mapping=None):
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"format": 2, "tests": records, "provenance": {"timestamp": "then"}}))
    return load_baseline(str(path), mapping or {})


def test_match_key_renames_baseline_labels():
    assert match_key({**PARAMS, "codec": "ours-v1"}, "case", {"ours-v1": "ours-v2"}) == \
        match_key({**PARAMS, "codec": "ours-v2"}, "case")
    assert match_key(PARAMS, "case") != match_key(PARAMS, "transfer")


def test_a_change_within_the_allowance_passes_and_beyond_it_fails(tmp_path, thresholds):
    base = _baseline(tmp_path, [_record(2.0)])
    allowed = parse_cli("delta_psnr:0.3")
    ok, worse = _record(2.25), _record(2.5)
    assert all(g.passed for g in compare(ok, ("undefended",), thresholds, base, allowed))
    (gate,) = compare(worse, ("undefended",), thresholds, base, allowed)
    assert not gate.passed and gate.value == pytest.approx(0.5) and gate.baseline == 2.0 and gate.current == 2.5
    assert worse["comparison"]["status"] == "compared"


def test_relative_allowance_scales_with_the_baseline(tmp_path, thresholds):
    base = _baseline(tmp_path, [_record(2.0)])
    (gate,) = compare(_record(2.1), ("undefended",), thresholds, base, parse_cli("delta_psnr:10%"))
    assert gate.limit == pytest.approx(0.2) and gate.passed


def test_a_test_missing_from_the_baseline_is_new(tmp_path, thresholds):
    base = _baseline(tmp_path, [_record(2.0, codec="other")])
    fresh = _record(2.0)
    assert compare(fresh, ("undefended",), thresholds, base, parse_cli("delta_psnr:0.3")) == []
    assert fresh["comparison"]["status"] == "new"
    summary = run_comparison([fresh], base)
    assert summary["new"] == ["t1"] and summary["missing"] == ["t1"] and summary["compared"] == 0


def test_bad_baselines_and_allowances_are_one_line_errors(tmp_path):
    with pytest.raises(BaselineError, match="no such file"):
        load_baseline(str(tmp_path / "missing.json"), {})
    (tmp_path / "x.json").write_text("{\"tests\": 3}")
    with pytest.raises(BaselineError, match="no 'tests' list"):
        load_baseline(str(tmp_path / "x.json"), {})
    with pytest.raises(NicrobustError, match="expected a number or 'N%'"):
        parse_allowed("delta_psnr", "lots", "t", "t")
    with pytest.raises(NicrobustError, match="OLD_LABEL=NEW_LABEL"):
        parse_mapping("v1")
