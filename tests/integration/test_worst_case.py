"""The verdict: the worst case per image over a suite's attacks, and no pass without a limit."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from helpers import write_suite, write_thresholds

from pytest_nicrobust.record import from_json  # the JSON keeps a case's headline once, in modes

FAST = ["--nicrobust-metrics", "psnr,mse,msssim", "-p", "no:randomly", "--nicrobust-no-transfer"]
ATTACKS = (
    '[[attacks]]\nname = "pgd"\nsteps = 2\n\n[[attacks]]\nname = "ifgsm"\nsteps = 1\n\n[[attacks]]\nname = "noise"\n'
)


@pytest.fixture
def project(pytester, tiny_pt):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    write_suite(pytester.path, attacks=ATTACKS, images=2, extra='defenses = ["none", "roll"]')
    write_thresholds(pytester.path, "[defaults]\ndelta_psnr = 100.0\nbitrate_increase = 100.0\n")
    return pytester


def _tests(path):
    return {t["name"]: from_json(t) for t in json.loads(path.read_text())["tests"]}


def _check_worst(tests):
    worst = [t for t in tests.values() if t["kind"] == "worst-case"]
    assert len(worst) == 4  # 2 qualities x 2 defenses
    for w in worst:
        members = [tests[m] for m in w["members"]]
        assert len(members) == 5  # pgd and ifgsm with 2 aligned objectives each, noise once
        for mode, block in w["modes"].items():
            for row in block["per_image"]:
                for metric, value in row.items():
                    if metric in ("image", "winner"):
                        continue
                    values = {
                        m["params"]["attack"] + ":" + m["params"]["objective"]: next(
                            r[metric] for r in m["modes"][mode]["per_image"] if r["image"] == row["image"]
                        )
                        for m in members
                    }
                    assert value == max(values.values()), (w["name"], mode, metric)
                    assert values[row["winner"][metric].replace("noise[eps7]", "noise[eps7]:none")] == value
        assert w["mean"]["delta_psnr"] >= max(m["mean"]["delta_psnr"] for m in members) - 1e-12


def test_worst_case_is_the_per_image_max_and_is_reproduced_from_the_cache_or_the_seed(project, tmp_path):
    full = tmp_path / "full.json"
    project.runpytest_subprocess("suites", "--nicrobust-json", str(full), *FAST).assert_outcomes(passed=24)
    tests = _tests(full)
    _check_worst(tests)
    # alone, from the x' cache; then with an empty cache, attacking again with the same seeds
    for cache in (None, tmp_path / "empty-cache"):
        out = tmp_path / "alone.json"
        extra = [f"--nicrobust-cache={cache}"] if cache else []
        project.runpytest_subprocess("suites", "-k", "worst", f"--nicrobust-json={out}", *extra, *FAST).assert_outcomes(
            passed=4
        )
        for name, w in _tests(out).items():
            assert w["modes"] == tests[name]["modes"], name


def test_a_test_without_a_limit_is_reported_not_passed(project, tmp_path):
    write_thresholds(
        project.path,
        '[overrides.q1-only]\nmatch = { codec = "tiny[q1]" }\ndelta_psnr = 100.0\n'
        '[overrides.typo]\nmatch = { codec = "tiny[q9]" }\ndelta_psnr = 1.0\n',
    )
    out = tmp_path / "r.json"
    result = project.runpytest_subprocess("suites", "-rs", "--nicrobust-json", str(out), "-k", "photos-none", *FAST)
    result.assert_outcomes(passed=4, skipped=4)
    result.stdout.fnmatch_lines(
        [
            "4 test(s) measured with no limit in *thresholds.toml (skipped, not passed)",
            "warning: thresholds.toml [[]overrides.typo] matched no test in this run",
            "SKIPPED*measured, no limit in thresholds.toml applies",
        ]
    )
    skipped = [t for t in _tests(out).values() if t["outcome"] == "skipped"]
    assert len(skipped) == 4 and all(t["params"]["codec"] == "tiny" and t["params"]["bitrate"] == "q2" for t in skipped)
    assert all(t["gated"] is False and not math.isnan(t["mean"]["delta_psnr"]) for t in skipped)
