"""The example third-party codec (examples/tinydct), end to end as a codec team would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tinydct"


def _run(*args, timeout=900):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    return subprocess.run(
        [sys.executable, *args], cwd=EXAMPLE, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_check_codec_passes_the_example():
    proc = _run(
        "-m", "pytest_nicrobust", "check-codec", "tinydct.nicrobust:make_codec@s0.6", "--weights", "weights/v1.pt"
    )
    assert proc.returncode == 0 and "14 of 14 properties hold" in proc.stdout, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tinydct")
    proc = _run(
        "-m",
        "pytest",
        "tinydct.suite.toml",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        f"--nicrobust-json={out / 'results.json'}",
        f"--alluredir={out / 'allure'}",
    )
    return out, proc


def test_the_example_suite_runs_attacks_worst_case_and_transfer(run):
    out, proc = run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    tests = json.loads((out / "results.json").read_text())["tests"]
    kinds = {t["kind"] for t in tests}
    assert kinds == {"case", "worst-case", "transfer"}
    names = {t["name"] for t in tests}
    assert "tinydct-v1[s0.6-pgd-eps7-recon_error-skimage-photos-none]" in names  # a quality shown as given
    assert "tinydct-v2[q2-worst-case-skimage-photos-none]" in names
    assert "tinydct-v1[q2-pgd-eps7-recon_error-skimage-photos-transfer-tinydct-v2:q2]" in names


def test_both_versions_stay_apart_in_every_output(run):
    out, proc = run
    doc = json.loads((out / "results.json").read_text())
    weights = {t["codec"]["label"]: t["codec"]["file"] for t in doc["tests"]}
    assert weights == {
        "tinydct-v1": str(EXAMPLE / "weights" / "v1.pt"),
        "tinydct-v2": str(EXAMPLE / "weights" / "v2.pt"),
    }
    step = {t["codec"]["step"] for t in doc["tests"] if t["codec"]["label"] == "tinydct-v1"}
    assert step == {1.0}, "the suite's extra key reached the factory"
    env = (out / "allure" / "environment.properties").read_text()
    # Environment names each version's weights by file, relative to where the run started.
    assert "codec.tinydct-v1[2]=weights/v1.pt" in env and "codec.tinydct-v2[s0.6]=weights/v2.pt" in env
    group = next(g for g in doc["transfer"] if g.startswith("pgd[eps7]-recon_error"))
    assert {"tinydct-v1[q2]", "tinydct-v2[q2]", "tinydct-v1[s0.6]", "tinydct-v2[s0.6]"} <= set(
        doc["transfer"][group]["sources"]
    )
    cards = {c["codec"] for c in doc["summary"]["score_card"]}
    assert cards == {"tinydct-v1[q2]", "tinydct-v1[s0.6]", "tinydct-v2[q2]", "tinydct-v2[s0.6]"}


def test_the_docs_adapter_example_is_the_examples_code():
    """docs/codecs-own.md shows examples/tinydct's adapter: every code line of its methods is there."""
    doc = (EXAMPLE.parents[1] / "docs" / "codecs-own.md").read_text()
    block = doc.split("class TinyDCTCodec(Codec):", 1)[1].split("```", 1)[0]
    source = (EXAMPLE / "tinydct" / "nicrobust.py").read_text()
    code = [line.split("#")[0].strip() for line in block.splitlines()]
    missing = [
        line for line in code if line and not line.startswith(('"""', "bits =", "Deterministic")) and line not in source
    ]
    assert not missing, missing
