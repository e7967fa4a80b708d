"""Release over release: a run compared with a saved baseline, its provenance and terminal table."""

from __future__ import annotations

import json
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
    result = project.runpytest_subprocess("suites", f"--nicrobust-compare={baseline}", f"--nicrobust-json={out}",
                                          "--nicrobust-compare-fail=delta_psnr:0.3,bitrate_increase:10%", *FAST)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["compared with *v1.json: 4 test(s) matched, 0 got worse than allowed"])
    doc = json.loads(out.read_text())
    assert doc["comparison"]["compared"] == 4 and not doc["comparison"]["missing"] and not doc["comparison"]["new"]
    assert all(t["comparison"]["change"]["delta_psnr"] == 0.0 for t in doc["tests"])


def test_a_worse_release_fails_with_the_regression_message(project, baseline, tmp_path):
    def one_db_better(test):  # the baseline release was 1 dB more robust
        for block in [test] + list(test.get("modes", {}).values()):
            block["mean"]["delta_psnr"] -= 1.0

    old = _edit(baseline, tmp_path / "old.json", one_db_better)
    result = project.runpytest_subprocess("suites", f"--nicrobust-compare={old}",
                                          "--nicrobust-compare-fail=delta_psnr:0.3", *FAST)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines([
        "*tiny[[]q1-pgd-eps7+steps:2-recon_error-skimage-photos-none]: 1 limit(s) passed (mean over 1 image(s)):",
        "*delta_psnr * → * dB, worse by 1 > allowed 0.3 (--nicrobust-compare-fail: allowed 0.3)"])
    # the same allowance from thresholds.toml's [regression] table, and a relative one that tolerates it
    write_thresholds(project.path, "[defaults]\ndelta_psnr = 100.0\n[regression]\ndelta_psnr = 0.5\n")
    project.runpytest_subprocess("suites", f"--nicrobust-compare={old}", *FAST).stdout.fnmatch_lines(
        ["*worse by 1 > allowed 0.5 (thresholds.toml [[]regression]: allowed 0.5)"])
    write_thresholds(project.path, "[defaults]\ndelta_psnr = 100.0\n[regression]\ndelta_psnr = \"10000%\"\n")
    project.runpytest_subprocess("suites", f"--nicrobust-compare={old}", *FAST).assert_outcomes(passed=4)


def test_new_and_missing_tests_are_listed_and_labels_can_be_mapped(project, baseline, tmp_path):
    suite = project.path / "suites" / "mini.toml"
    suite.write_text(suite.read_text().replace('name = "tiny"', 'name = "tiny-v2"').replace("[1, 2]", "[1, 3]"))
    result = project.runpytest_subprocess("suites", f"--nicrobust-compare={baseline}",
                                          "--nicrobust-compare-map=tiny=tiny-v2", *FAST)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["compared with *: 2 test(s) matched, 0 got worse than allowed",
                                 "2 test(s) not in the baseline:",
                                 "  tiny-v2[[]q3-pgd-eps7+steps:2-recon_error-skimage-photos-none]",
                                 "  tiny-v2[[]q3-worst-case-skimage-photos-none]",
                                 "2 test(s) in the baseline, not in this run:",
                                 "  tiny[[]q2-pgd-eps7+steps:2-recon_error-skimage-photos-none]",
                                 "  tiny[[]q2-worst-case-skimage-photos-none]"])


@pytest.mark.parametrize("args, message", [
    (["--nicrobust-compare=nowhere.json"], "--nicrobust-compare nowhere.json: no such file"),
    (["--nicrobust-compare-fail=delta_psnr:0.3"], "--nicrobust-compare-fail needs --nicrobust-compare"),
    (["--nicrobust-compare=suites/mini.toml"], "not a results JSON"),
    (["--nicrobust-compare=suites/mini.toml", "--nicrobust-compare-fail=delta_psnr"], "expected METRIC:AMOUNT"),
])
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
