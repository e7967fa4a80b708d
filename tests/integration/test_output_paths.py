"""What a run or a merge writes replaces nothing it must not, checked before anything is written:
the suite file, the thresholds file, the baseline, a shard, a device node (a FIFO stands in for
/dev/null: never touch /dev)."""

from __future__ import annotations

import json
import os
import stat

import pytest
from helpers import run_merge, write_suite, write_thresholds

PROVENANCE = {
    "timestamp": "2026-12-01T00:00:00Z",
    "plugin": {"version": "0.1.0"},
    "command": ["pytest"],
    "thresholds": {"path": "thresholds.toml", "sha256": None},
    "seed": 0,
    "suites": {},
}
MEASURED = {
    "id": "suites/mini.suite.toml::tiny[q1-pgd-eps7-recon_error-skimage-photos-none]",
    "name": "tiny[q1-pgd-eps7-recon_error-skimage-photos-none]",
    "kind": "case",
    "params": {
        "codec": "tiny",
        "bitrate": "q1",
        "attack": "pgd[eps7]",
        "objective": "recon_error",
        "dataset": "skimage-photos",
        "defense": "none",
    },
    "mean": {"delta_psnr": 1.0},
    "outcome": "skipped",
}
# a results JSON of the plugin, as an earlier run or a baseline is (it matches the schema)
RESULTS = json.dumps({"format": 3, "complete": True, "provenance": PROVENANCE, "tests": [MEASURED]}, indent=1)


@pytest.fixture
def project(pytester, tiny_pt):
    write_suite(pytester.path, checkpoint=str(tiny_pt))
    write_thresholds(pytester.path)
    return pytester


def _refused(result, line):
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    assert line in result.stderr.str(), result.stderr.str()


def test_the_suite_file_given_as_the_json_target_is_refused_and_kept(project):
    suite = project.path / "suites" / "mini.suite.toml"
    before = suite.read_text()
    result = project.runpytest_subprocess("--nicrobust-json", "suites/mini.suite.toml")  # its value forgotten
    _refused(result, "--nicrobust-json suites/mini.suite.toml: exists and is not a results JSON of pytest-nicrobust")
    assert suite.read_text() == before


def test_the_thresholds_file_and_the_baseline_are_refused_and_kept(project):
    thresholds = project.path / "thresholds.toml"
    before = thresholds.read_text()
    result = project.runpytest_subprocess("suites", "--nicrobust-json", str(thresholds))
    _refused(result, f"--nicrobust-json {thresholds}: it is the thresholds file of this run")
    assert thresholds.read_text() == before
    baseline = project.path / "last.json"
    baseline.write_text(RESULTS)
    result = project.runpytest_subprocess("suites", "--nicrobust-json=last.json", "--nicrobust-compare=last.json")
    _refused(result, "--nicrobust-json last.json: it is the baseline (--nicrobust-compare) of this run")
    assert baseline.read_text() == RESULTS


def test_a_device_node_stand_in_is_refused_and_left_as_it_was(project):
    fifo = project.path / "null"
    os.mkfifo(fifo)
    result = project.runpytest_subprocess("suites", f"--nicrobust-json={fifo}")
    _refused(result, f"--nicrobust-json {fifo}: exists and is a FIFO, not a results JSON")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_merge_refuses_a_device_node_stand_in_and_an_input_as_its_output(tmp_path):
    for name in ("s1.json", "s2.json"):
        (tmp_path / name).write_text(RESULTS)
    fifo = tmp_path / "null"
    os.mkfifo(fifo)
    proc = run_merge(tmp_path, "s1.json", "s2.json", "-o", str(fifo))
    assert proc.returncode == 2 and f"merge: -o {fifo}: exists and is a FIFO" in proc.stderr, proc.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    proc = run_merge(tmp_path, "s1.json", "s2.json", "-o", "s2.json")
    assert proc.returncode == 2 and "merge: -o s2.json: it is an input shard (s2.json) of this run" in proc.stderr
    assert (tmp_path / "s2.json").read_text() == RESULTS
