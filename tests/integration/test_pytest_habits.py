"""pytest's own habits on robustness tests: --lf, --ff, --sw, --deselect, with and without xdist."""

from __future__ import annotations

import json
from importlib import resources
from xml.etree import ElementTree

import pytest
from helpers import tiny_project, write_suite

from pytest_nicrobust.outputs.schema import problems

FAST = ["--nicrobust-metrics", "psnr,mse", "-p", "no:randomly", "--nicrobust-no-transfer"]
# q2's case and worst case fail (no degradation allowed), q1's pass
LIMITS = 'extends = false\n[defaults]\ndelta_psnr = 100.0\n\n[overrides.strict-q2]\nmatch = { codec = "tiny[q2]" }\ndelta_psnr = 0.0\n'
FAILING = {
    "suites/mini.suite.toml::tiny[q2-pgd-eps7+steps:2-recon_error-skimage-photos-none]",
    "suites/mini.suite.toml::tiny[q2-worst-case-skimage-photos-none]",
}


@pytest.fixture
def project(pytester, tiny_pt):
    tiny_project(pytester, tiny_pt, LIMITS)
    write_suite(pytester.path, attacks='[[attacks]]\nname = "pgd"\npresets = ["eps7"]\nsteps = 2\n')
    first = pytester.runpytest_subprocess("suites", *FAST)
    first.assert_outcomes(failed=2, passed=2)
    return pytester


def _ran(result) -> dict[str, str]:
    """{node id: outcome} from -v lines (``id PASSED``, or ``[gw0] [ 50%] PASSED id`` under xdist), in order."""
    out = {}
    for line in result.outlines:
        words = line.split()
        for a, b in zip(words, words[1:]):
            if "::" in a and b in ("PASSED", "FAILED", "ERROR"):
                out[a] = b
            elif a in ("PASSED", "FAILED", "ERROR") and "::" in b:
                out[b] = a
    return out


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_last_failed_reruns_only_the_failures(project, workers):
    result = project.runpytest_subprocess("suites", "--lf", "-v", *FAST, *workers)
    assert result.parseoutcomes().get("passed", 0) == 0
    if not workers:  # the header line comes from the process that collects (an xdist worker's is not shown)
        assert any("rerun previous 2 failures" in line for line in result.outlines)
    assert set(_ran(result)) == FAILING


def test_failed_first_runs_the_failures_first(project):
    ran = list(_ran(project.runpytest_subprocess("suites", "--ff", "-v", *FAST)))
    assert len(ran) == 4 and set(ran[:2]) == FAILING


def test_stepwise_resumes_at_the_failure(project):
    first = project.runpytest_subprocess("suites", "--sw", "-v", *FAST)
    first.assert_outcomes(failed=1, passed=1)  # the q1 case passes, the q2 case stops the run
    again = project.runpytest_subprocess("suites", "--sw", "-v", *FAST)
    assert any("skipping 1 already passed items" in line for line in again.outlines)
    assert next(iter(_ran(again))) in FAILING


def test_deselect_takes_a_pasted_id(project):
    gone = sorted(FAILING)[0]
    result = project.runpytest_subprocess("suites", "--deselect", gone, "-v", *FAST)
    result.assert_outcomes(failed=1, passed=2, deselected=1)
    assert gone not in _ran(result)


def test_junit_carries_the_gated_means_not_the_record(project):
    """Under xdist the record reaches the JSON beside the report; --junitxml gets each gate's mean and limit."""
    result = project.runpytest_subprocess(
        "suites", "-n", "2", "--junitxml=junit.xml", "--nicrobust-json=results.json", *FAST
    )
    result.assert_outcomes(failed=2, passed=2)
    tests = {t["name"]: t for t in json.loads((project.path / "results.json").read_text())["tests"]}
    assert len(tests) == 4 and all(t.get("gates") for t in tests.values())
    cases = ElementTree.parse(project.path / "junit.xml").getroot().iter("testcase")
    seen = 0
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        gate = tests[case.get("name")]["gates"][0]
        assert props == {"nicrobust.delta_psnr": repr(gate["value"]), "nicrobust.delta_psnr.limit": repr(gate["limit"])}
        seen += 1
    assert seen == 4


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_run_stopped_by_x_is_not_complete(project, workers):
    """-x leaves selected tests unrun: the JSON says so, and why, instead of "complete": true."""
    result = project.runpytest_subprocess("suites", "-x", "--nicrobust-json=results.json", *FAST, *workers)
    doc = json.loads((project.path / "results.json").read_text())
    ran = {t["id"] for t in doc["tests"]}
    if not workers:  # in one process the cases run before the worst cases: the first failure leaves some
        assert len(ran) < 4
    assert doc["complete"] is (len(ran) == 4)
    if len(ran) < 4:
        stopped = doc["stopped"]
        assert "stopping after 1 failures" in stopped["reason"]
        assert stopped["not_run"] == 4 - len(ran) and not ran & set(stopped["tests_not_run"])
        assert any("the run stopped early (stopping after 1 failures)" in line for line in result.outlines)
    assert problems(doc, json.loads((resources.files("pytest_nicrobust") / "results.schema.json").read_text())) == []


def test_a_whole_run_is_complete(project):
    project.runpytest_subprocess("suites", "--nicrobust-json=results.json", *FAST)
    doc = json.loads((project.path / "results.json").read_text())
    assert doc["complete"] is True and "stopped" not in doc and len(doc["tests"]) == 4
