"""Random weights are built under a seed from the run seed and the codec's label, before a factory
or a class is called: every xdist worker builds the same net (an unseeded factory built another net
in each worker, and the worst case came out below one of its own members)."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

from pytest_nicrobust.codecs.loading import load_codec

DRAWS = """
import random

import numpy as np
import torch

from pytest_nicrobust.codecs.base import Codec, CodecInfo


class Drawn(Codec):
    def __init__(self, name):
        super().__init__(CodecInfo(name, "drawn", None, None))
        self.draws = (torch.randn(4).tolist(), random.random(), float(np.random.rand()))


def make(*, name, quality, weights, device):
    return Drawn(name)
"""


@pytest.fixture
def roots(tmp_path):
    (tmp_path / "drawing.py").write_text(DRAWS)
    yield (str(tmp_path),)
    sys.modules.pop("drawing", None)


def _draws(roots, label="ours", seed=0):
    return load_codec("drawing:make", None, None, "cpu", label, search=roots, seed=seed).draws


def test_every_generator_a_factory_draws_from_is_seeded_by_run_seed_and_label(roots):
    assert _draws(roots) == _draws(roots), "two workers would build two nets"
    assert _draws(roots, seed=1) != _draws(roots) and _draws(roots, label="theirs") != _draws(roots)


def test_the_generators_are_put_back_after_the_build(roots):
    torch_state, py_state, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    _draws(roots)
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == py_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), np_state))
