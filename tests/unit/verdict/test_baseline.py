"""verdict.baseline on its own: matching a test across runs, allowed changes, the run-level comparison."""

from __future__ import annotations

import json

import pytest

from pytest_nicrobust import NicrobustError
from pytest_nicrobust.config.regression import parse_allowed, parse_cli, parse_mapping
from pytest_nicrobust.config.thresholds import load_thresholds
from pytest_nicrobust.verdict.baseline import BaselineError, compare, load_baseline, match_key, run_comparison

PARAMS = {
    "codec": "ours-v1",
    "bitrate": "q3",
    "attack": "pgd[eps7]",
    "objective": "recon_error",
    "dataset": "kodak",
    "defense": "none",
}


def _record(delta_psnr, codec="ours-v1", name="t1"):
    return {
        "id": name,
        "name": name,
        "kind": "case",
        "params": {**PARAMS, "codec": codec},
        "mean": {"delta_psnr": delta_psnr, "bitrate_increase": 0.02},
        "modes": {"undefended": {"mean": {"delta_psnr": delta_psnr, "bitrate_increase": 0.02}}},
    }


@pytest.fixture
def thresholds(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text("extends = false\n\n[defaults]\ndelta_psnr = 10\n")  # the allowances of the command line only
    return load_thresholds(str(path))


def _baseline(tmp_path, records, mapping=None):
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"format": 2, "tests": records, "provenance": {"timestamp": "then"}}))
    return load_baseline(str(path), mapping or {})


def test_match_key_renames_baseline_labels():
    assert match_key({**PARAMS, "codec": "ours-v1"}, "case", {"ours-v1": "ours-v2"}) == match_key(
        {**PARAMS, "codec": "ours-v2"}, "case"
    )
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
    (tmp_path / "x.json").write_text('{"tests": 3}')
    with pytest.raises(BaselineError, match="no 'tests' list"):
        load_baseline(str(tmp_path / "x.json"), {})
    with pytest.raises(NicrobustError, match="expected a number or 'N%'"):
        parse_allowed("delta_psnr", "lots", "t", "t")
    with pytest.raises(NicrobustError, match="OLD_LABEL=NEW_LABEL"):
        parse_mapping("v1")


def test_a_relative_allowance_has_an_absolute_floor(tmp_path, thresholds):
    # 10 % of a near-zero baseline bitrate increase (0.004) would allow 0.0004: the floor (0.02) wins
    near_zero = {
        **_record(2.0),
        "mean": {"bitrate_increase": 0.004},
        "modes": {"undefended": {"mean": {"bitrate_increase": 0.004}}},
    }
    base = _baseline(tmp_path, [near_zero])
    now = {
        **near_zero,
        "mean": {"bitrate_increase": 0.014},
        "modes": {"undefended": {"mean": {"bitrate_increase": 0.014}}},
    }
    (gate,) = compare(now, ("undefended",), thresholds, base, parse_cli("bitrate_increase:10%"))
    assert gate.limit == pytest.approx(0.02) and gate.passed and "(floor)" in gate.source
    far = {**now, "mean": {"bitrate_increase": 0.05}, "modes": {"undefended": {"mean": {"bitrate_increase": 0.05}}}}
    (gate,) = compare(far, ("undefended",), thresholds, base, parse_cli("bitrate_increase:10%"))
    assert not gate.passed


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"format": 99, "tests": [], "provenance": {}}, "format 99, this plugin reads formats 2, 3"),
        ({"format": 3, "tests": [{"params": 5, "mean": {}}], "provenance": {}}, "tests[0].params: expected an object"),
        (
            {"format": 3, "tests": [{"params": PARAMS, "mean": {"delta_psnr": "x"}}], "provenance": {}},
            "tests[0].mean: expected an object of numbers",
        ),
        ({"format": 3, "tests": [{"params": PARAMS, "modes": [1]}], "provenance": {}}, "tests[0].modes: expected"),
        ({"format": 3, "tests": [_record(1.0)], "provenance": "x"}, "provenance: expected an object"),
        ({"format": 3, "tests": [], "provenance": {}}, "no test with measured means"),
    ],
)
def test_a_baseline_that_cannot_be_compared_is_refused_in_one_line(tmp_path, doc, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(BaselineError) as err:
        load_baseline(str(path), {})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_set_up_differences_are_one_warning_line_each(tmp_path, thresholds):
    path = tmp_path / "base.json"
    prov = {
        "timestamp": "then",
        "seed": 0,
        "suites": {"/a/suites/mini.toml": "a" * 64},
        "thresholds": {"sha256": "b" * 64},
    }
    path.write_text(json.dumps({"format": 3, "complete": False, "tests": [_record(2.0)], "provenance": prov}))
    base = load_baseline(str(path), {})
    now = {**_record(2.0), "seed": "7"}
    compare(now, ("undefended",), thresholds, base, {})
    here = {"seed": 1, "suites": {"/b/suites/mini.toml": "c" * 64}, "thresholds": {"sha256": "d" * 64}}
    warnings = run_comparison([now], base, here)["warnings"]
    assert any("partial run (complete: False)" in w for w in warnings)
    assert any("--nicrobust-seed 0, this run with 1" in w for w in warnings)
    assert any("suite mini.toml changed" in w for w in warnings)
    assert any("thresholds file changed" in w for w in warnings)
    assert all("\n" not in w for w in warnings)
    same = run_comparison([now], base, prov)["warnings"]
    assert not any("changed" in w or "--nicrobust-seed" in w for w in same)


def test_other_images_are_not_compared(tmp_path, thresholds):
    old = {**_record(2.0), "per_image": [{"image": "a"}, {"image": "b"}]}
    base = _baseline(tmp_path, [old])
    now = {**_record(5.0), "per_image": [{"image": "a"}]}
    assert compare(now, ("undefended",), thresholds, base, parse_cli("delta_psnr:0.3")) == []
    assert now["comparison"]["status"] == "not comparable" and "other images" in now["comparison"]["reason"]
    summary = run_comparison([now], base)
    assert summary["not_comparable"][0]["test"] == "t1" and summary["compared"] == 0
    assert any("not compared" in w for w in summary["warnings"])


def test_a_nan_in_the_baseline_is_named_as_the_baselines_not_the_codecs(tmp_path, thresholds):
    base = _baseline(tmp_path, [_record(float("nan"))])
    assert "baseline base.json: 1 mean(s) are NaN (their codec produced NaN), not compared: e.g. delta_psnr of t1" in (
        base.warnings
    )
    result = _record(2.0)
    assert compare(result, ("undefended",), thresholds, base, parse_cli("delta_psnr:0.3")) == []
    assert result["comparison"]["status"] == "not comparable"
    assert result["comparison"]["reason"] == (
        "the baseline's delta_psnr is NaN (its codec produced NaN): nothing to compare with"
    )


def test_a_nan_in_this_run_is_named_as_this_runs(tmp_path, thresholds):
    base = _baseline(tmp_path, [_record(2.18)])
    (gate,) = compare(_record(float("nan")), ("undefended",), thresholds, base, parse_cli("delta_psnr:0.3"))
    assert not gate.passed
    assert gate.numbers() == "NaN in this run (baseline 2.18 dB, allowed change 0.3 dB): the codec produced NaN"


def test_a_baseline_test_without_means_says_so_instead_of_comparing_nothing(tmp_path, thresholds):
    failed = {**_record(2.0, name="t2"), "outcome": "failed", "error": "CodecError: the decoder crashed"}
    failed["params"] = {**PARAMS, "dataset": "bsds"}
    del failed["mean"], failed["modes"]
    base = _baseline(tmp_path, [_record(2.0), failed])
    assert (
        "baseline base.json: 1 test(s) have no means (they failed before measuring), so they are not compared: e.g. t2"
        in base.warnings
    )
    result = {**_record(2.1), "params": {**PARAMS, "dataset": "bsds"}}
    assert compare(result, ("undefended",), thresholds, base, parse_cli("delta_psnr:0.3")) == []
    assert result["comparison"] == {
        "status": "not comparable",
        "baseline": base.path,
        "baseline_id": "t2",
        "reason": "the baseline's record has no means (it failed before measuring: CodecError: the decoder crashed)",
    }
