"""CI shards: a deterministic split by model, and a merge that equals one whole run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from helpers import run_merge, tiny_checkpoint

from pytest_nicrobust.config.shards import assign, parse_shard

SUITE = """
images = 1
crop = 64

[[codecs]]
model = "bmshj2018-factorized"
name = "a"
weights = "a.pt"
qualities = [1, 2]

[[codecs]]
model = "bmshj2018-factorized"
name = "b"
weights = "b.pt"
qualities = [1]

[[attacks]]
name = "pgd"
steps = 1

[[attacks]]
name = "noise"

[[datasets]]
name = "skimage-photos"
"""
THRESHOLDS = """
extends = false
[defaults]
delta_psnr = 100.0
[overrides.transfer]
match = { mode = "transfer", target = "jpeg*" }
transfer_delta_psnr = 100.0
"""
ARGS = ["--nicrobust-metrics", "psnr,mse", "-p", "no:randomly"]


def test_shard_spec_and_balance():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b"):
        with pytest.raises(ValueError, match="expected K/N"):
            parse_shard(bad)
    shards = assign({"big": 10.0, "mid": 6.0, "small1": 4.0, "small2": 4.0}, 2)
    assert shards == {"big": 1, "mid": 2, "small1": 2, "small2": 1}  # loads 14 and 10
    assert assign({"x": 1.0}, 3) == {"x": 1}


def _pytest(root, *args):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites", *ARGS, *args], cwd=root, capture_output=True, text=True, timeout=600
    )


def _merge(root, *args):
    return run_merge(root, *args)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    (root / "suites").mkdir()
    tiny_checkpoint(root / "suites" / "a.pt", seed=1)
    tiny_checkpoint(root / "suites" / "b.pt", seed=2)
    (root / "suites" / "s.suite.toml").write_text(SUITE)
    (root / "thresholds.toml").write_text(THRESHOLDS)
    whole = _pytest(root, "--nicrobust-json=whole.json")
    assert whole.returncode == 0, whole.stdout[-3000:]
    for k in (1, 2, 3):
        (root / f"shard{k}").mkdir()
        proc = _pytest(
            root, f"--nicrobust-shard={k}/3", f"--nicrobust-json=shard{k}/r.json", f"--alluredir=shard{k}/allure"
        )
        assert proc.returncode in (0, 5), proc.stdout[-3000:]
    return root


def _comparable(doc):
    """Everything but timings, when and where it ran and the provenance."""
    tests = [{k: v for k, v in t.items() if k not in ("timings", "worker", "started", "stopped")} for t in doc["tests"]]
    return tests, doc["summary"], doc["transfer"]


def test_three_shards_merged_equal_the_whole_run(project):
    shard_docs = [json.loads((project / f"shard{k}" / "r.json").read_text()) for k in (1, 2, 3)]
    shard_tests = [doc["tests"] for doc in shard_docs]
    assert all(doc["collected"] == sorted(t["id"] for t in doc["tests"]) for doc in shard_docs), "what each collected"
    models = [{t["params"]["codec"] + t["params"]["bitrate"] for t in tests} for tests in shard_tests]
    assert all(len(m) == 1 for m in models) and len(set.union(*models)) == 3, "one model per shard, whole"
    proc = _merge(
        project, "shard1/r.json", "shard2/r.json", "shard3/r.json", "-o", "merged.json", "--alluredir", "merged-allure"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    merged, whole = json.loads((project / "merged.json").read_text()), json.loads((project / "whole.json").read_text())
    assert _comparable(merged) == _comparable(whole)
    assert merged["collected"] == whole["collected"] == sorted(t["id"] for t in whole["tests"])
    assert len(merged["provenance"]["shards"]) == 3
    assert (project / "merged-transfer" / "transfer.json").exists()
    results = [json.loads(p.read_text()) for p in (project / "merged-allure").glob("*-result.json")]
    assert [r["name"] for r in results] == ["nicrobust run summary"]
    assert (project / "merged-allure" / "environment.properties").exists()
    assert not list((project / "shard1" / "allure").glob("environment.properties")), "left to the merge"


def test_merge_refuses_shards_of_different_runs(project, tmp_path):
    doc = json.loads((project / "shard2" / "r.json").read_text())
    doc["provenance"]["thresholds"]["sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(doc))
    shutil.copy(project / "shard1" / "r.json", tmp_path / "copy.json")
    cases = [
        (
            ["shard1/r.json", str(tmp_path / "other.json"), "shard3/r.json"],
            "come from different runs: their thresholds differ",
        ),
        (["shard1/r.json", "shard3/r.json"], "shard(s) 2/3 missing"),
        (["shard1/r.json", str(tmp_path / "copy.json"), "shard3/r.json"], "are both shard 1/3"),
        (["shard1/r.json", "shard1/r.json"], "shard1/r.json given twice"),
        (["whole.json"], "whole.json: not a shard"),
    ]
    for files, message in cases:
        proc = _merge(project, *files, "-o", str(tmp_path / "m.json"))
        assert proc.returncode == 2 and message in proc.stderr, (files, proc.stderr)
    shutil.rmtree(tmp_path, ignore_errors=True)
