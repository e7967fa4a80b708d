"""The Allure output: run-level files from the controller only, and the generated HTML report.

The HTML checks need the Allure command line (``npm install --prefix .tools allure-commandline``,
plus Java) and Chromium; they are skipped with the reason when either is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from helpers import tiny_checkpoint

pytest.importorskip("allure_commons", reason="allure-pytest is not installed")

ROOT = Path(__file__).resolve().parents[2]
SUITE = """
images = 1
crop = 64
defenses = ["none", "flip"]

[[codecs]]
model = "bmshj2018-factorized"
name = "tiny"
weights = "tiny.pt"
qualities = [1, 2]

[[attacks]]
name = "pgd"
presets = ["eps7"]
steps = 2

[[datasets]]
name = "skimage-photos"

[[datasets]]
name = "mine"
path = "empty-folder"
"""
THRESHOLDS = """
extends = false
[defaults]
delta_psnr = 100.0

[overrides.strict-adaptive]
match = { codec = "tiny[q1]", mode = "adaptive" }
delta_psnr = 0.0

[overrides.bits]
match = { codec = "tiny*", defense = "flip" }
delta_mse = 0.0
"""
CATEGORIES = ["over the limit: delta_psnr", "over the limit: delta_mse", "data error", "run verdict"]


def allure_cli() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "allure"
    return os.environ.get("NICROBUST_ALLURE") or (str(local) if local.exists() else shutil.which("allure"))


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("allure")
    (root / "suites").mkdir()
    tiny_checkpoint(root / "suites" / "tiny.pt")
    (root / "suites" / "report.suite.toml").write_text(textwrap.dedent(SUITE))
    (root / "suites" / "empty-folder").mkdir()  # a data error at run time: no images in it
    (root / "thresholds.toml").write_text(THRESHOLDS)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites",
            "-n",
            "2",
            "-p",
            "no:randomly",
            "--nicrobust-metrics",
            "psnr,mse",
            "--alluredir",
            "allure-results",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "failed" in proc.stdout, proc.stdout[-3000:]
    return root / "allure-results"


def test_controller_writes_environment_categories_and_summary_once(results):
    env = (results / "environment.properties").read_text()
    for line in (
        "torch=",
        "compressai=",
        "pytest-nicrobust=",
        "device=cpu",
        "nicrobust.seed=0",
        "codec.tiny[1]=suites/tiny.pt",
        "nicrobust.thresholds=thresholds.toml",
        "suites=suites/report.suite.toml",
    ):
        assert line in env.splitlines() or any(x.startswith(line) for x in env.splitlines()), line
    assert "sha256" not in env and not re.search(r"[0-9a-f]{40}", env) and str(results.parent) not in env
    executor = json.loads((results / "executor.json").read_text())
    assert executor["name"] == "pytest-nicrobust" and executor["reportName"].startswith("nicrobust verdict: FAILED: ")
    names = [c["name"] for c in json.loads((results / "categories.json").read_text())]
    assert all(c in names for c in CATEGORIES)
    assert len(list(results.glob("*environment.properties*"))) == 1
    summaries = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    summaries = [r for r in summaries if r["name"] == "nicrobust run summary"]
    assert len(summaries) == 1
    assert summaries[0]["status"] == "failed", "a failing run's summary must not count as a passed test"
    kinds = {a["type"] for a in summaries[0]["attachments"]}
    assert {"image/png", "text/html", "application/json"} == kinds


def test_a_test_shows_what_its_codec_says_of_itself(results):
    cases = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    case = next(r for r in cases if r["name"] == "tiny[q1-pgd-eps7+steps:2-recon_error-skimage-photos-none]")
    details = next(p for p in case["parameters"] if p["name"] == "codec details")
    assert "sha256=" in details["value"] and "file=" in details["value"] and details.get("excluded") is True


def _generate(results, out, *extra):
    cli = allure_cli()
    if not cli or not shutil.which("java"):
        pytest.skip("needs the Allure command line (npm install --prefix .tools allure-commandline) and Java")
    proc = subprocess.run(
        [cli, "generate", str(results), "-o", str(out), "--clean", *extra], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_generated_report_lists_tests_parameters_categories_pictures(results, tmp_path):
    report = _generate(results, tmp_path / "report")
    cases = [json.loads(p.read_text()) for p in (report / "data" / "test-cases").glob("*.json")]
    by_name = {c["name"]: c for c in cases}
    assert "tiny[q1-pgd-eps7+steps:2-recon_error-skimage-photos-flip]" in by_name
    assert "tiny[q2-pgd-eps7+steps:2-recon_error-skimage-photos-transfer-jpeg]" in by_name
    flip = by_name["tiny[q1-pgd-eps7+steps:2-recon_error-skimage-photos-flip]"]
    params = {p["name"]: p["value"] for p in flip["parameters"]}  # as written in the suite, no repr() quotes
    assert params["defense"] == "flip" and params["bitrate"] == "q1" and flip["status"] == "failed"
    assert params["attack"] == "pgd[eps7+steps:2]"
    tags = [label["value"] for label in flip["labels"] if label["name"] == "tag"]
    assert tags and len(tags) == len(set(tags)), tags
    # the red box names the gate and the codec; the numbers are in the failure text and the description
    assert flip["statusMessage"].endswith("over its limit: tiny[q1]") and " > limit " in flip["statusTrace"] + str(flip)
    transfer = by_name["tiny[q2-pgd-eps7+steps:2-recon_error-skimage-photos-transfer-jpeg]"]
    suites = {label["name"]: label["value"] for label in transfer["labels"]}
    assert suites["parentSuite"] == "nicrobust transfer" and suites["suite"] == "tiny[q2]"

    def attachments(case):
        steps = case["testStage"]["steps"] + [case["testStage"]]
        return [a for s in steps for a in s.get("attachments", [])]

    assert any(a["type"] == "image/jpg" for a in attachments(flip)), "picture rows"
    summary = by_name["nicrobust run summary"]
    assert any(a["name"].endswith(".png") and a["name"].startswith("transfer-") for a in attachments(summary))
    tree = json.loads((report / "data" / "categories.json").read_text())
    assert set(CATEGORIES) <= {c["name"] for c in tree["children"]}
    # a category holds the tests whose worst gate is that metric, one group per codec (not one per test)
    over = next(c for c in tree["children"] if c["name"] == "over the limit: delta_mse")
    (group,) = over["children"]  # q2's recon_error and its worst case; q1's flip tests are further over ΔPSNR
    assert group["name"] == "pytest_nicrobust.verdict.gates.GateFailure: delta_mse over its limit: tiny[q2]"
    assert len(group["children"]) == 2
    # a test failing two metrics is counted under both in Behaviors
    behaviors = json.loads((report / "data" / "behaviors.json").read_text())
    failed = next(e for e in behaviors["children"] if e["name"] == "over the limit")
    features = {
        f["name"]: {t["name"] for story in f["children"] for t in story["children"]} for f in failed["children"]
    }
    both = "tiny[q1-pgd-eps7+steps:2-recon_error-skimage-photos-flip]"
    assert both in features["delta_psnr"] and both in features["delta_mse"]


def test_report_page_renders_categories_in_chromium(results, tmp_path):
    browser = chromium()
    if not browser:
        pytest.skip("needs Chromium (apt-get install -y chromium)")
    report = _generate(results, tmp_path / "single", "--single-file")
    profile = tempfile.mkdtemp()
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            (report / "index.html").as_uri() + "#categories",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    shutil.rmtree(profile, ignore_errors=True)
    for name in CATEGORIES:
        assert f'class="node__name">{name}<' in proc.stdout, f"category {name!r} not rendered"
