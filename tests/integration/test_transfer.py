"""Transfer: classical codecs at matched bitrate, the x' cache, the generated tests and matrices."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import tiny_checkpoint

from pytest_nicrobust.codecs.builtin import classical
from pytest_nicrobust.config.cases import transfer_cases
from pytest_nicrobust.config.suite import parse_suite
from pytest_nicrobust.datasets import Image
from pytest_nicrobust.names import CLASSICAL
from pytest_nicrobust.outputs.transfer_matrix import assemble
from pytest_nicrobust.run.advcache import AdvCache, cache_key

SUITE = """
images = 1
crop = 64

[[codecs]]
model = "bmshj2018-factorized"
name = "tiny"
weights = "tiny-q{quality}.pt"
qualities = [1, 2]

[[codecs]]
model = "bmshj2018-factorized"
name = "tiny-next"
weights = "tiny-next.pt"
qualities = [1]

[[attacks]]
name = "pgd"
presets = ["eps7"]
steps = 2

[[datasets]]
name = "skimage-photos"
"""
THRESHOLDS = """
extends = false
[defaults]
delta_psnr = 100.0

[overrides.jpeg-transfer]
match = { target = "jpeg", codec = "tiny" }  # ΔPSNR through JPEG is 0.09 dB for tiny, not above 0 for tiny-next
transfer_delta_psnr = 0.0
"""
TARGETS = ["tiny[q1]", "tiny[q2]", "tiny-next[q1]", "jpeg", "webp", "jpeg2000"]


def run_pytest(cwd, *args):
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def make_project(root, suite=SUITE, thresholds=THRESHOLDS):
    (root / "suites").mkdir()
    for i, name in enumerate(["tiny-q1.pt", "tiny-q2.pt", "tiny-next.pt"]):
        tiny_checkpoint(root / "suites" / name, seed=i)
    (root / "suites" / "transfer.suite.toml").write_text(textwrap.dedent(suite))
    (root / "thresholds.toml").write_text(thresholds)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One -n 2 run of the suite with JSON and Allure output, shared by the tests below."""
    root = make_project(tmp_path_factory.mktemp("transfer"))
    proc = run_pytest(
        root,
        "suites",
        "-n",
        "2",
        "-p",
        "no:randomly",
        "--nicrobust-metrics",
        "psnr,mse",
        "--nicrobust-json",
        "r.json",
        "--alluredir",
        "allure-results",
    )
    return root, proc


def test_classical_quality_matches_the_bitrate():
    from skimage import data

    pixels = data.astronaut()[:96, :96]
    for fmt in CLASSICAL:
        q = classical.match_quality(pixels, fmt, 1.0)
        _, nbytes = classical.encode_decode(pixels, fmt, q)
        assert abs(8 * nbytes / 96**2 - 1.0) < 0.35, fmt


def test_cache_is_content_addressed_and_lossless(tmp_path):
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.config.suite import AttackEntry

    codec = load_codec("bmshj2018-factorized", "random", 1)
    attack = AttackEntry("pgd", "eps7", "recon_error", "noise")
    im = Image("a", np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    key = cache_key(codec, attack, 1, im, ["a"])
    assert key != cache_key(codec, attack, 2, im, ["a"])
    assert key != cache_key(codec, attack, 1, Image("a", im.pixels ^ 1), ["a"])
    assert key != cache_key(codec, attack, 1, im, ["a"], defense="adaptive:roll")
    assert key != cache_key(codec, attack, 1, im, ["a", "b"]), "a batch shares one random stream"
    assert key != cache_key(load_codec("bmshj2018-factorized", "random", 2), attack, 1, im, ["a"])
    cache = AdvCache(str(tmp_path))
    assert cache.get(key) is None
    cache.put(key, im.pixels)
    assert np.array_equal(cache.get(key), im.pixels)
    assert not list(tmp_path.rglob("*.tmp"))


def test_transfer_cases_cover_every_other_codec_and_the_classical_ones(tmp_path):
    make_project(tmp_path)
    cases = parse_suite(str(tmp_path / "suites" / "transfer.suite.toml")).cases
    names = sorted(t.name for t in transfer_cases(cases))
    assert len(names) == 3 * (2 + 3)
    assert "tiny[q1-pgd-eps7+steps:2-recon_error-skimage-photos-transfer-tiny:q2]" in names
    assert "tiny-next[q1-pgd-eps7+steps:2-recon_error-skimage-photos-transfer-jpeg2000]" in names
    assert not any(n.startswith("tiny[q1") and n.endswith("transfer-tiny:q1]") for n in names)


def test_transfer_tests_are_deselectable(tmp_path):
    make_project(tmp_path)
    proc = run_pytest(tmp_path, "suites", "--collect-only", "-q", "-m", "not transfer and not worst_case")
    assert "3/21 tests collected" in proc.stdout, proc.stdout[-2000:]
    proc = run_pytest(tmp_path, "suites", "--collect-only", "-q", "--nicrobust-no-transfer")
    assert "6 tests collected" in proc.stdout, proc.stdout[-2000:]


def test_matrix_has_every_source_target_cell(run):
    root, proc = run
    # 3 cases + 3 worst cases pass, the 3 JPEG cells fail their limit, the other 12 cells have none
    assert "2 failed, 6 passed, 13 skipped" in proc.stdout, proc.stdout[-3000:]
    data = json.loads((root / "r.json").read_text())
    (group,) = data["transfer"]
    mat = data["transfer"][group]
    assert mat["sources"] == sorted(TARGETS[:3]) and mat["targets"] == sorted(TARGETS[:3]) + TARGETS[3:]
    for metric in ("delta_psnr", "bitrate_increase"):
        assert all(v is not None for row in mat["metrics"][metric] for v in row), metric
    cell = next(
        t for t in data["tests"] if t["name"] == "tiny[q1-pgd-eps7+steps:2-recon_error-skimage-photos-transfer-webp]"
    )
    assert cell["per_image"][0]["quality"] > 0 and cell["per_image"][0]["bpp_source"] > 0


def test_transfer_gate_fails_with_its_own_limit(run):
    _, proc = run
    assert "transfer_delta_psnr [transfer]: " in proc.stdout and "overrides.jpeg-transfer" in proc.stdout
    assert "> limit " in proc.stdout and "over by " in proc.stdout


def test_matrix_files_and_cache(run):
    root, _ = run
    folder = root / "r-transfer"
    with open(folder / "transfer-pgd_eps7_steps_2_-recon_error-skimage-photos-delta_psnr.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == sorted(TARGETS[:3]) + TARGETS[3:] and [r[0] for r in rows[1:]] == sorted(TARGETS[:3])
    assert (folder / "transfer-pgd_eps7_steps_2_-recon_error-skimage-photos.png").read_bytes()[:4] == b"\x89PNG"
    cached = list((root / ".pytest_cache").rglob("*.png"))
    assert len(cached) == 3, "one x' per source codec, made once and shared by the workers"


def test_assemble_fills_the_diagonal_from_the_undefended_test():
    results = [
        {
            "kind": "case",
            "params": {
                "codec": "a",
                "bitrate": "q1",
                "attack": "pgd[eps7]",
                "objective": "recon_error",
                "dataset": "kodak",
                "defense": "none",
            },
            "mean": {"delta_psnr": 3.0},
        },
        {
            "kind": "transfer",
            "source": "a[q1]",
            "target": "jpeg",
            "params": {"attack": "pgd[eps7]", "objective": "recon_error", "dataset": "kodak"},
            "mean": {"delta_psnr": 1.0},
        },
    ]
    mat = assemble(results)["pgd[eps7]-recon_error-kodak"]
    assert mat["targets"] == ["a[q1]", "jpeg"] and mat["metrics"]["delta_psnr"] == [[3.0, 1.0]]
    assert assemble(results[:1]) == {}, "no transfer cell (transfer off): no 1x1 matrices"
