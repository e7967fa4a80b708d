"""A codec named by class in a suite, end to end: a team's subclass of a CompressAI model, random and
saved weights, a 2-step PGD with the reconstruction and bitrate objectives, check-codec on it, and
the table's errors reported at collection with the suite file and key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from helpers import write_thresholds

from pytest_nicrobust.record import from_json  # the JSON keeps a case's headline once, in modes

FAST = [
    "--nicrobust-metrics",
    "psnr,mse,msssim",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:randomly",
    "--nicrobust-no-transfer",
]

SUITE = """
images = 1
crop = 64
worst_case = false

[[codecs]]
class = "team_nets:ScaleHyperprior"   # the team's model beside the suite
options = {{ N = 16, M = 24 }}
{weights}

[[attacks]]
name = "pgd"
presets = ["eps7"]
steps = 2
objectives = ["recon_error", "bitrate"]

[[datasets]]
name = "skimage-photos"
"""


TEAM_NETS = "from compressai.models import ScaleHyperprior as Base\n\n\nclass ScaleHyperprior(Base):\n    pass\n"


@pytest.fixture
def project(pytester):
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "team_nets.py").write_text(TEAM_NETS)
    write_thresholds(pytester.path)
    return pytester


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A CompressAI training checkpoint ({"state_dict": ...}) of ScaleHyperprior(N=16, M=24). Module
    scope: made before pytester snapshots sys.modules (torch is imported once)."""
    import torch
    from compressai.models import ScaleHyperprior

    torch.manual_seed(1)
    net = ScaleHyperprior(N=16, M=24)
    net.update(force=True)
    path = tmp_path_factory.mktemp("ckpt") / "sh.pth.tar"
    torch.save({"state_dict": net.state_dict(), "epoch": 1}, path)
    return path


def _state_dict(checkpoint, path):
    shutil.copy(checkpoint, path)


@pytest.mark.parametrize(
    "weights, prefix",
    [
        ('weights = "random"', "random-ScaleHyperprior["),
        ('weights = "sh-{quality}.pth.tar"\nqualities = ["l0.01"]\nname = "ours"', "ours[l0.01-"),
    ],
)
def test_an_attack_runs_on_a_class_codec(project, checkpoint, tmp_path, weights, prefix):
    _state_dict(checkpoint, project.path / "suites" / "sh-l0.01.pth.tar")
    (project.path / "suites" / "cls.suite.toml").write_text(SUITE.format(weights=weights))
    out = tmp_path / "r.json"
    result = project.runpytest_subprocess("suites", "--nicrobust-json", str(out), *FAST)
    result.assert_outcomes(passed=2)
    tests = {t["name"]: from_json(t) for t in json.loads(out.read_text())["tests"]}
    assert set(tests) == {f"{prefix}pgd-eps7+steps:2-{o}-skimage-photos-none]" for o in ("recon_error", "bitrate")}
    for t in tests.values():
        assert t["mean"]["psnr_inputs"] < 60, "the attack changed the image"
        assert t["codec"]["architecture"] == "team_nets:ScaleHyperprior"
        assert t["codec"]["random_init"] == prefix.startswith("random-")


def test_check_codec_on_a_codec_of_a_suite(project, checkpoint):
    _state_dict(checkpoint, project.path / "suites" / "sh-l0.01.pth.tar")
    suite = project.path / "suites" / "cls.suite.toml"
    suite.write_text(SUITE.format(weights='weights = "sh-{quality}.pth.tar"\nqualities = ["l0.01"]\nname = "ours"'))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_nicrobust", "check-codec", str(suite), "--codec", "ours[l0.01]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and "14 of 14 properties hold" in proc.stdout, proc.stdout + proc.stderr
    assert "PASS  estimated rate tracks the real bitstream" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_nicrobust", "check-codec", str(suite), "--codec", "theirs"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no codec 'theirs'; give --codec one of ours[l0.01]" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "table, message",
    [
        ('class = "ScaleHyperprior"\nweights = "random"', "codecs[0].class: expected 'module:Class'"),
        ('class = "models:Net"\npath = "nowhere"\nweights = "random"', "codecs[0].path: folder"),
        (
            'class = "team_nets:ScaleHyperprior"\nweights = "ckpt-{quality}.pt"\nqualities = [3]',
            "codecs[0].weights: checkpoint",
        ),
        (
            'class = "team_nets:ScaleHyperprior"\noptions = { N = 16, M = 24 }',
            "codecs[0].weights: give a state-dict file",
        ),
        (
            'class = "team_nets:ScaleHyperprior"\nweights = "random"\nmultiple = 0',
            "codecs[0].multiple: expected an integer >= 1",
        ),
    ],
)
def test_table_errors_at_collection_name_the_file_and_key(project, table, message):
    (project.path / "suites" / "bad.suite.toml").write_text(
        f'[[codecs]]\n{table}\n\n[[attacks]]\nname = "pgd"\n\n[[datasets]]\nname = "skimage-photos"\n'
    )
    result = project.runpytest_subprocess("suites", "--collect-only", *FAST)
    assert result.ret != 0
    assert f"suites/bad.suite.toml: {message}" in result.stdout.str(), result.stdout.str()[-2000:]
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    "table, message",
    [
        ('class = "team_nets:NoSuchModel"\nweights = "random"', "class: module 'team_nets'"),
        (
            'class = "team_nets:ScaleHyperprior"\noptions = { N = 16, M = 24, depth = 3 }\nweights = "random"',
            "options: team_nets:ScaleHyperprior(M=24, N=16, depth=3) raised TypeError",
        ),
        (
            'class = "team_nets:ScaleHyperprior"\noptions = { N = 32, M = 24 }\nweights = "sh-l0.01.pth.tar"',
            "weights: ",
        ),
    ],
)
def test_load_errors_are_one_line_naming_the_key(project, checkpoint, table, message):
    _state_dict(checkpoint, project.path / "suites" / "sh-l0.01.pth.tar")
    (project.path / "suites" / "bad.suite.toml").write_text(
        f'images = 1\ncrop = 64\nworst_case = false\n\n[[codecs]]\n{table}\n\n[[attacks]]\nname = "pgd"\nsteps = 1\n\n'
        '[[datasets]]\nname = "skimage-photos"\n'
    )
    result = project.runpytest_subprocess("suites", *FAST)
    text = result.stdout.str()
    assert result.ret != 0 and message in text, text[-3000:]
    line = next(row for row in text.splitlines() if message in row)
    assert "(class team_nets:" in line and "Traceback" not in text
