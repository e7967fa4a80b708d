"""check-codec's rate property: the estimate must track the real bitstream; a steady offset only warns."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from pytest_nicrobust.codecs import check, load_codec
from pytest_nicrobust.codecs.builtin.compressai_models import CompressAICodec
from pytest_nicrobust.codecs.checks.conformance import sample_images
from pytest_nicrobust.codecs.checks.rate_tracking import judge, measure

PROPERTY = "estimated rate tracks the real bitstream"

# bpp of two images over VARIANTS, measured on the shipped bmshj2018-factorized q3 (real bitstream)
REAL = [[0.697, 0.9632, 0.9632, 1.1026], [0.6717, 0.7308, 0.7435, 0.9083]]
EST = [[0.6898, 0.9562, 0.9585, 1.0969], [0.6656, 0.7236, 0.7337, 0.9025]]


def test_the_rule_on_numbers():
    ok, detail, warning = judge(REAL, EST)
    assert ok and not warning, detail
    ok, detail, warning = judge(REAL, [[1.8 * v for v in f] for f in EST])
    assert ok and "x1.79" in warning, (detail, warning)
    ok, detail, _ = judge(REAL, [[0.8] * 4, [0.7] * 4])
    assert not ok and "out of order" in detail and "slope 0.00" in detail
    ok, detail, _ = judge(REAL, [[1 / v for v in f] for f in EST])
    assert not ok and "slope -" in detail
    ok, detail, _ = judge(REAL, [[v / 7575 for v in f] for f in EST])
    assert not ok and "bits (not bpp or bytes)" in detail
    # neither rate moves (random weights): not judged, passes; only the estimate moves: fails
    ok, detail, _ = judge([[8.8] * 4] * 2, [[8.79] * 4] * 2)
    assert ok and "not judged" in detail
    ok, detail, _ = judge([[8.8] * 4] * 2, [[1.0, 2.0, 3.0, 4.0]] * 2)
    assert not ok and "while the real rate stays" in detail


@pytest.fixture(scope="module")
def trained():
    """A trained codec (shipped weights): its real rate moves with the input, so tracking is judged."""
    return load_codec("bmshj2018-factorized", "nicrobust", 1, "cpu", "shipped")


def _with_bits(base, change):
    def _forward_padded(self, x, proxy, generator):
        x_hat, bits = CompressAICodec._forward_padded(self, x, proxy, generator)
        return x_hat, change(bits)

    codec = object.__new__(type("Variant", (CompressAICodec,), {"_forward_padded": _forward_padded}))
    codec.__dict__.update(copy.deepcopy(base.__dict__))
    return codec


def _random(bits):  # a proxy unrelated to the image: bits times a factor drawn afresh each call
    return bits * (0.3 + 2.7 * torch.rand(bits.shape, generator=_random.g))


_random.g = torch.Generator().manual_seed(0)

BROKEN = {
    "random": _random,
    "constant": lambda bits: bits * 0 + 4000.0,
    "inverted": lambda bits: 2.5e7 / bits,
}


@pytest.mark.parametrize("what", list(BROKEN))
def test_a_proxy_that_does_not_track_fails(trained, what):
    ok, detail, _ = judge(*measure(_with_bits(trained, BROKEN[what]), sample_images()))  # what check-codec runs
    assert not ok and ("out of order" in detail or "slope" in detail), detail


def test_a_steady_offset_passes_with_a_warning(trained):
    results = {r.name: r for r in check(_with_bits(trained, lambda bits: 1.8 * bits))}
    r = results[PROPERTY]
    assert r.passed and r.warning, r.line()
    assert re.search(rf"\nWARN  {PROPERTY}: the estimated rate is x1\.[78]\d", r.line()), r.line()
    assert all(v.passed for v in results.values()), [v.line() for v in results.values() if not v.passed]


def test_the_shipped_codec_tracks_without_warning(trained):
    r = {r.name: r for r in check(trained)}[PROPERTY]
    assert r.passed and not r.warning, r.line()
    pairs = re.findall(r"(\d+)/(\d+) pairs in order", r.detail)
    assert len(pairs) == 2 and all(a == b != "0" for a, b in pairs), r.detail  # both images judged, all in order
