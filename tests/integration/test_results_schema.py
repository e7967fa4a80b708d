"""results.json against the JSON Schema shipped in the package (docs/results-json.md): a real run
of a small suite (a defended case, worst cases, transfer cells, a comparison with a baseline)
validates, and the same file with one key renamed does not."""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
from importlib import resources

import pytest
from helpers import write_suite, write_thresholds

from pytest_nicrobust.outputs.schema import problems, results_schema

FAST = ["--nicrobust-metrics", "psnr,mse,msssim", "-p", "no:cacheprovider", "-p", "no:randomly"]
SUITE_EXTRA = 'defenses = ["none", "flip"]'
ATTACKS = '[[attacks]]\nname = "pgd"\npresets = ["eps7"]\nsteps = 1\nobjectives = ["recon_error"]\n'


def _schema() -> dict:
    """The schema as a user reads it from the installed package."""
    shipped = json.loads((resources.files("pytest_nicrobust") / "results.schema.json").read_text())
    assert shipped == results_schema()
    return shipped


@pytest.fixture
def documents(pytester, tiny_pt, tmp_path):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    write_suite(pytester.path, attacks=ATTACKS, extra=SUITE_EXTRA)
    write_thresholds(
        pytester.path,
        '[defaults]\ndelta_psnr = 100.0\n[overrides.t]\nmatch = { mode = "transfer" }\n'
        "transfer_delta_psnr = 100.0\n[regression]\ndelta_psnr = 0.3\n",
    )
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    pytester.runpytest_subprocess("suites", f"--nicrobust-json={first}", *FAST).assert_outcomes(passed=16)
    pytester.runpytest_subprocess(
        "suites", f"--nicrobust-json={second}", f"--nicrobust-compare={first}", *FAST
    ).assert_outcomes(passed=16)
    return first, second


def test_a_real_run_matches_the_schema_and_a_renamed_key_does_not(documents):
    schema = _schema()
    first, second = documents
    for path in (first, second):
        doc = json.loads(path.read_text())
        assert problems(doc, schema) == [], path.name
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()  # 0644 under umask 022
    doc = json.loads(second.read_text())
    kinds = {t["kind"] for t in doc["tests"]}
    assert kinds == {"case", "worst-case", "transfer"} and doc["comparison"]["compared"] == 16
    assert all(isinstance(t["seed"], str) and t["seed"].isdigit() for t in doc["tests"] if "seed" in t)
    case = next(t for t in doc["tests"] if t["kind"] == "case" and t["params"]["defense"] == "flip")
    assert "mean" not in case and case["headline_mode"] == "adaptive" and set(case["modes"]) >= {"adaptive"}
    # one key renamed, anywhere the schema knows: the check fails and names it
    for rename in (
        lambda d: d["tests"][0].__setitem__("means", d["tests"][0].pop("modes")),
        lambda d: d["provenance"].__setitem__("seeds", d["provenance"].pop("seed")),
        lambda d: d["tests"][0]["gates"][0].__setitem__("limits", d["tests"][0]["gates"][0].pop("limit")),
        lambda d: d["summary"].__setitem__("verdict_text", d["summary"].pop("verdict_line")),
    ):
        bad = copy.deepcopy(doc)
        rename(bad)
        found = problems(bad, schema)
        assert found and any("unknown key" in p or "missing key" in p for p in found), found


def test_no_transfer_files_when_transfer_is_off(pytester, tiny_pt, tmp_path):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    write_suite(pytester.path, attacks=ATTACKS)
    write_thresholds(pytester.path)
    out = tmp_path / "r.json"
    pytester.runpytest_subprocess(
        "suites", f"--nicrobust-json={out}", "--nicrobust-no-transfer", *FAST
    ).assert_outcomes(passed=4)
    doc = json.loads(out.read_text())
    assert doc["transfer"] == {} and not (tmp_path / "r-transfer").exists()
    assert problems(doc, _schema()) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


RAISING = """
from pytest_nicrobust.codecs.builtin.compressai_models import load


def make(*, name, quality, weights, device):
    codec = load("bmshj2018-factorized", "random", 1, device, name)

    def crash(x):
        raise RuntimeError("the decoder crashed")

    codec._roundtrip_padded = crash
    return codec
"""


def test_a_run_where_a_decode_raises_matches_the_schema(pytester, tmp_path):
    """A failure half-way keeps every mode's block whole: its mean is there (the images measured)."""
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "raising.py").write_text(RAISING)
    (pytester.path / "suites" / "crash.suite.toml").write_text(
        'images = 1\ncrop = 64\nworst_case = false\ntransfer = false\n\n[[codecs]]\nmodel = "raising:make"\n'
        'name = "crashing"\n\n[[attacks]]\nname = "noise"\n\n[[datasets]]\nname = "skimage-photos"\n'
    )
    write_thresholds(pytester.path)
    out = tmp_path / "r.json"
    pytester.runpytest_subprocess("suites", f"--nicrobust-json={out}", *FAST).assert_outcomes(failed=1)
    doc = json.loads(out.read_text())
    assert problems(doc, _schema()) == []
    (test,) = doc["tests"]
    assert test["outcome"] == "failed" and "the decoder crashed" in test["error"]
    assert test["modes"]["undefended"] == {"per_image": [], "mean": {}}
