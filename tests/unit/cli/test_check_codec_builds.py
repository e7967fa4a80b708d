"""check-codec builds the codec twice and fails when the two builds differ: a factory that draws its
random weights from a seed of its own builds another net in every xdist worker (the plugin seeds every
factory from the run seed and the codec's label, so a plain random one builds the same net twice)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FACTORY = """
import os

import torch
from compressai.zoo.image import model_architectures

from pytest_nicrobust.codecs.base import CodecInfo
from pytest_nicrobust.codecs.builtin.compressai_models import CompressAICodec


def make(*, name, quality, weights, device, own_seed=False):
    if own_seed:  # a seed of its own: another net each time it is built
        torch.manual_seed(int.from_bytes(os.urandom(4), "little"))
    net = model_architectures["bmshj2018-factorized"](N=8, M=8)
    return CompressAICodec(net, CodecInfo(name, "bmshj2018-factorized", 1, None, random_init=True), device)


def unseeded(**kwargs):
    return make(own_seed=True, **kwargs)
"""


@pytest.mark.parametrize("spec, passes", [("randomnet:make@1", True), ("randomnet:unseeded@1", False)])
def test_two_builds_must_give_the_same_codec(tmp_path, spec, passes):
    (tmp_path / "randomnet.py").write_text(FACTORY)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_nicrobust", "check-codec", spec],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    line = next(row for row in proc.stdout.splitlines() if "built twice, the same codec" in row)
    if passes:
        assert proc.returncode == 0 and line.startswith("PASS"), proc.stdout + proc.stderr
    else:
        assert proc.returncode == 1 and line.startswith("FAIL  built twice, the same codec: a second build differs")
        assert "every xdist worker would measure another codec" in line
