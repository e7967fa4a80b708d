"""A factory is loaded like a checkpoint: {quality} in weights filled in (checked at collection), and
its exception is one codec-error line (it was a 50-line traceback in every test)."""

from __future__ import annotations

import sys

import pytest

from pytest_nicrobust import CodecError
from pytest_nicrobust.codecs.loading import load_codec
from pytest_nicrobust.config.errors import SuiteError
from pytest_nicrobust.config.suite import parse_suite

FACTORY = """
def make(*, name, quality, weights, device):
    raise RuntimeError(f"no such layer: foo (weights {weights})")
"""
SUITE = """
[[codecs]]
model = "teamcodec:make"
name = "ours"
weights = "ckpt/w-{quality}.pt"
qualities = [1, 2]

[[attacks]]
name = "noise"

[[datasets]]
name = "skimage-photos"
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "teamcodec.py").write_text(FACTORY)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "w-1.pt").write_bytes(b"")
    (tmp_path / "s.toml").write_text(SUITE)
    yield tmp_path
    sys.modules.pop("teamcodec", None)


def test_a_factorys_weights_are_checked_at_collection_per_quality(project):
    with pytest.raises(SuiteError) as info:
        parse_suite(str(project / "s.toml"))
    assert str(info.value) == (
        f"{project / 's.toml'}: codecs[0].weights: checkpoint {project}/ckpt/w-2.pt (quality 2) does not exist "
        "(or use one of nicrobust, zoo, random)"
    )
    (project / "ckpt" / "w-2.pt").write_bytes(b"")
    assert len(parse_suite(str(project / "s.toml")).cases) == 2


def test_a_factory_gets_its_qualitys_file_and_its_exception_is_one_line(project):
    with pytest.raises(CodecError) as info:
        load_codec("teamcodec:make", str(project / "ckpt" / "w-{quality}.pt"), 1, "cpu", "ours", search=(str(project),))
    assert str(info.value) == (
        f"codec ours: its factory teamcodec:make raised RuntimeError: no such layer: foo (weights {project}/ckpt/w-1.pt)"
    )
