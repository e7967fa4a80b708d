"""Release over release: a run compared with a saved baseline, its provenance and terminal table."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from helpers import write_suite, write_thresholds

FAST = ["--nicrobust-metrics", "psnr,mse,msssim", "-p", "no:randomly", "--nicrobust-no-transfer"]


@pytest.fixture
def project(pytester, tiny_pt):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    write_suite(pytester.path)
    write_thresholds(pytester.path)
    return pytester


@pytest.fixture
def baseline(project, tmp_path):
    path = tmp_path / "v1.json"
    project.runpytest_subprocess("suites", f"--nicrobust-json={path}", *FAST).assert_outcomes(passed=4)
    return path


def _edit(path, out, fn):
    doc = json.loads(path.read_text())
    for test in doc["tests"]:
        fn(test)
    out.write_text(json.dumps(doc))
    return out


def test_unchanged_baseline_passes_and_every_test_is_matched(project, baseline, tmp_path):
    out = tmp_path / "v2.json"
    result = project.runpytest_subprocess(
        "suites",
        f"--nicrobust-compare={baseline}",
        f"--nicrobust-json={out}",
        "--nicrobust-compare-fail=delta_psnr:0.3,bitrate_increase:10%",
        *FAST,
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["compared with *v1.json: 4 test(s) matched, 0 got worse than allowed"])
    doc = json.loads(out.read_text())
    assert doc["comparison"]["compared"] == 4 and not doc["comparison"]["missing"] and not doc["comparison"]["new"]
    assert all(t["comparison"]["change"]["delta_psnr"] == 0.0 for t in doc["tests"])


def test_a_worse_release_fails_with_the_regression_message(project, baseline, tmp_path):
    def one_db_better(test):  # the baseline release was 1 dB more robust
        for block in [test] + list(test.get("modes", {}).values()):
            if "mean" in block:  # a case's means are in its modes, once (format 3)
                block["mean"]["delta_psnr"] -= 1.0

    old = _edit(baseline, tmp_path / "old.json", one_db_better)
    result = project.runpytest_subprocess(
        "suites", f"--nicrobust-compare={old}", "--nicrobust-compare-fail=delta_psnr:0.3", *FAST
    )
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [
            "*tiny[[]q1-pgd-eps7+steps:2-recon_error-skimage-photos-none]: 1 gate(s) failed (mean over 1 image(s)):",
            "*delta_psnr: * → * dB (baseline → now), worse by 1 dB > allowed 0.3 dB, over by 0.7 dB"
            "  (--nicrobust-compare-fail: allowed 0.3)",
        ]
    )
    # honest in the terminal: this run's mean, the baseline's and the change, each in its column
    out = result.stdout.str()
    head = next(line for line in out.splitlines() if line.startswith("outcome "))
    assert "baseline" in head and "change" in head and "mean" in head
    row = next(line for line in out.splitlines() if line.startswith("FAIL") and "pgd" in line and "tiny[q1]" in line)
    assert "delta_psnr vs baseline" in row and "change ≤ 0.3 dB" in row and "+1" in row and "over by 0.7 dB" in row
    numbers = re.findall(r"(-?\d+(?:\.\d+)?) dB", row)  # mean, allowed, over by, ..., baseline
    now, before = numbers[0], numbers[-1]
    assert float(now) == pytest.approx(float(before) + 1.0, abs=2e-3)
    result.stdout.fnmatch_lines(
        [
            "nicrobust verdict: FAILED: 4 failed (4 regression(s)), 0 passed, 0 without a limit; "
            "worst: delta_psnr * dB (baseline * dB, change +1 > allowed 0.3 dB), over by 0.7 dB*"
        ]
    )
    # the same allowance from thresholds.toml's [regression] table, and a relative one that tolerates it
    write_thresholds(project.path, "[defaults]\ndelta_psnr = 100.0\n[regression]\ndelta_psnr = 0.5\n")
    project.runpytest_subprocess("suites", f"--nicrobust-compare={old}", *FAST).stdout.fnmatch_lines(
        ["*worse by 1 dB > allowed 0.5 dB, over by 0.5 dB  (thresholds.toml [[]regression]: allowed 0.5)"]
    )
    write_thresholds(project.path, '[defaults]\ndelta_psnr = 100.0\n[regression]\ndelta_psnr = "10000%"\n')
    project.runpytest_subprocess("suites", f"--nicrobust-compare={old}", *FAST).assert_outcomes(passed=4)


def test_new_and_missing_tests_are_listed_and_labels_can_be_mapped(project, baseline, tmp_path):
    suite = project.path / "suites" / "mini.suite.toml"
    suite.write_text(suite.read_text().replace('name = "tiny"', 'name = "tiny-v2"').replace("[1, 2]", "[1, 3]"))
    result = project.runpytest_subprocess(
        "suites", f"--nicrobust-compare={baseline}", "--nicrobust-compare-map=tiny=tiny-v2", *FAST
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "compared with *: 2 test(s) matched, 0 got worse than allowed",
            "2 test(s) not in the baseline:",
            "  tiny-v2[[]q3-pgd-eps7+steps:2-recon_error-skimage-photos-none]",
            "  tiny-v2[[]q3-worst-case-skimage-photos-none]",
            "2 baseline test(s) not in this run: not run here: deselected*; listed in the JSON's comparison.missing",
        ]
    )
    assert "  tiny[q2-worst-case-skimage-photos-none]" not in result.stdout.str()  # a count, not 2 lines (or 342)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nicrobust-compare=nowhere.json"], "--nicrobust-compare nowhere.json: no such file"),
        (["--nicrobust-compare-fail=delta_psnr:0.3"], "--nicrobust-compare-fail needs --nicrobust-compare"),
        (["--nicrobust-compare=suites/mini.suite.toml"], "not a results JSON"),
        (
            ["--nicrobust-compare=suites/mini.suite.toml", "--nicrobust-compare-fail=delta_psnr"],
            "expected METRIC:AMOUNT",
        ),
    ],
)
def test_comparison_options_are_checked_before_the_run(project, args, message):
    result = project.runpytest_subprocess("suites", *args, *FAST)
    assert result.ret != 0 and message in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_provenance_says_where_the_numbers_came_from(project, baseline):
    prov = json.loads(baseline.read_text())["provenance"]
    assert prov["suites"] and all(len(h) == 64 for h in prov["suites"].values())
    assert prov["thresholds"]["path"].endswith("thresholds.toml") and len(prov["thresholds"]["sha256"]) == 64
    assert prov["seed"] == 0 and prov["packages"]["torch"] and prov["devices"] == ["cpu"]
    assert prov["command"][0] == "pytest" and "suites" in prov["command"]
    assert prov["duration_s"] > 0 and prov["timestamp"].endswith("Z")


def test_gate_matrix_and_json_keep_mean_baseline_and_change_apart(project, baseline, tmp_path):
    def one_db_better(test):
        for block in [test] + list(test.get("modes", {}).values()):
            if "mean" in block:
                block["mean"]["delta_psnr"] -= 1.0

    old = _edit(baseline, tmp_path / "old.json", one_db_better)
    out = tmp_path / "now.json"
    project.runpytest_subprocess(
        "suites",
        f"--nicrobust-compare={old}",
        f"--nicrobust-json={out}",
        "--nicrobust-compare-fail=delta_psnr:0.3",
        *FAST,
    ).assert_outcomes(failed=4)
    doc = json.loads(out.read_text())
    test = next(t for t in doc["tests"] if t["kind"] == "case" and "q1" in t["name"])
    mean = test["modes"][test["headline_mode"]]["mean"]["delta_psnr"]
    (gate,) = [g for g in test["gates"] if g["kind"] == "regression"]
    assert gate["current"] == pytest.approx(mean) and gate["baseline"] == pytest.approx(mean - 1.0)
    assert gate["value"] == pytest.approx(1.0) and gate["limit"] == 0.3
    assert {g["kind"] for g in test["gates"]} == {"limit", "regression"}
    cell = doc["summary"]["gate_matrix"]["cells"]["tiny[q1] · skimage-photos · none"]["pgd[eps7+steps:2]:recon_error"]
    assert cell["kind"] == "regression" and cell["value"] == pytest.approx(mean)  # the real ΔPSNR, not the change
    assert cell["baseline"] == pytest.approx(mean - 1.0) and cell["change"] == pytest.approx(1.0)
    assert cell["allowed"] == 0.3 and cell["limit"] is None
    worst = doc["summary"]["worst"]
    assert (
        worst["kind"] == "regression" and worst["value"] == pytest.approx(mean) and worst["over"] == pytest.approx(0.7)
    )


def test_a_subset_summarises_the_missing_baseline_tests_in_one_line(project, baseline, tmp_path):
    out = tmp_path / "sub.json"
    result = project.runpytest_subprocess(
        "suites", "-k", "q1 and pgd", f"--nicrobust-compare={baseline}", f"--nicrobust-json={out}", *FAST
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["3 baseline test(s) not in this run: not run here: deselected (-k, -m*"])
    assert "tiny[q2-worst-case" not in result.stdout.str()
    assert len(json.loads(out.read_text())["comparison"]["missing"]) == 3  # listed in the JSON only


@pytest.mark.writes_invalid_results  # a broken baseline on purpose
def test_a_broken_or_partial_baseline_is_one_line(project, baseline, tmp_path):
    doc = json.loads(baseline.read_text())
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**doc, "tests": [{"params": ["not", "a", "table"]}]}))
    result = project.runpytest_subprocess("suites", f"--nicrobust-compare={broken}", *FAST)
    err = result.stderr.str()
    assert result.ret != 0 and "tests[0].params: expected an object of strings" in err and "INTERNALERROR" not in err
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**doc, "format": 9}))
    result = project.runpytest_subprocess("suites", f"--nicrobust-compare={future}", *FAST)
    assert result.ret != 0 and "format 9, this plugin reads formats 2, 3" in result.stderr.str()
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({**doc, "complete": False, "provenance": {**doc["provenance"], "seed": 5}}))
    result = project.runpytest_subprocess("suites", f"--nicrobust-compare={partial}", *FAST)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "warning: baseline partial.json is a partial run (complete: False)*",
            "warning: the baseline ran with --nicrobust-seed 5, this run with 0*",
        ]
    )
