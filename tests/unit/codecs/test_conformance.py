"""The codec contract: check() passes good codecs and names the property a broken one breaks."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from helpers import tiny_checkpoint

from pytest_nicrobust.codecs import check, load_codec
from pytest_nicrobust.codecs.base import RoundTrip, round_to_8bit
from pytest_nicrobust.codecs.builtin.compressai_models import CompressAICodec
from pytest_nicrobust.codecs.checks.conformance import SAME_BUILD
from pytest_nicrobust.codecs.registry import call_factory


@pytest.fixture(scope="module")
def good(tiny_pt):
    return load_codec("bmshj2018-factorized", str(tiny_pt), 1, "cpu", "tiny")


def _broken(base, **methods):
    """``base`` with some methods replaced: a codec that breaks the contract in one way."""
    cls = type("Broken", (CompressAICodec,), methods)
    codec = object.__new__(cls)
    codec.__dict__.update(copy.deepcopy(base.__dict__))  # its own model: a broken one may change it
    return codec


def _bits_as_bpp(self, x, proxy, generator):
    x_hat, bits = CompressAICodec._forward_padded(self, x, proxy, generator)
    return x_hat, bits / (x.shape[-2] * x.shape[-1])


def _detached(self, x, proxy, generator):
    x_hat, bits = CompressAICodec._forward_padded(self, x, proxy, generator)
    return x_hat.detach(), bits.detach()


def _global_noise(self, x, proxy, generator):
    return CompressAICodec._forward_padded(self, x, proxy, None)  # ignores the attack's generator


def _scale_255(self, x, proxy, generator):
    x_hat, bits = CompressAICodec._forward_padded(self, x, proxy, generator)
    return x_hat * 255, bits


def _half_size(self, x, proxy, generator):
    x_hat, bits = CompressAICodec._forward_padded(self, x, proxy, generator)
    return x_hat[..., ::2, ::2], bits


def _shifted(self, x, proxy, generator):
    x_hat, bits = CompressAICodec._forward_padded(self, x, proxy, generator)
    return (x_hat + 0.2).clamp(0, 1), bits


def _noisy_decoder(self, x):
    x_hat, nbytes = CompressAICodec._roundtrip_padded(self, x)
    return (x_hat + 0.02 * torch.rand_like(x_hat)).clamp(0, 1), nbytes


def _unguarded_roundtrip(self, x):  # overrides the base class's roundtrip, skipping its checks
    x_hat, nbytes = self._roundtrip_padded(torch.nan_to_num(x))
    return RoundTrip(round_to_8bit(x_hat), nbytes, torch.tensor([8.0 * n / x[0, 0].numel() for n in nbytes]))


class _TrainMode:
    def __get__(self, codec, owner):
        return lambda x, proxy, generator: (
            codec.model.train(),
            CompressAICodec._forward_padded(codec, x, proxy, generator),
        )[1]


BROKEN = {
    "returns bpp, not bits": ({"_forward_padded": _bits_as_bpp}, "estimated rate tracks the real bitstream"),
    "no gradient": ({"_forward_padded": _detached}, "gradients reach the input (noise proxy)"),
    "noise not from the generator": ({"_forward_padded": _global_noise}, "noise proxy follows the generator"),
    "0-255 output": ({"_forward_padded": _scale_255}, "forward: shapes, range, device"),
    "wrong size": ({"_forward_padded": _half_size}, "forward: shapes, range, device"),
    "proxy far from the decoder": (
        {"_forward_padded": _shifted},
        "differentiable reconstruction close to the decoded one",
    ),
    "random decoder": ({"_roundtrip_padded": _noisy_decoder}, "real bytes decode the same twice"),
    "NaN hidden": ({"roundtrip": _unguarded_roundtrip}, "non-finite values are caught"),
    "switches to train()": ({"_forward_padded": _TrainMode()}, "model stays in eval mode"),
}


def test_a_good_codec_keeps_every_property(good):
    results = check(good)
    assert len(results) == 13 and all(r.passed for r in results), [r.line() for r in results if not r.passed]


def test_two_builds_are_compared_when_a_twin_is_given(good, tiny_pt, tmp_path):
    twin = load_codec("bmshj2018-factorized", str(tiny_pt), 1, "cpu", "tiny")
    (same,) = [r for r in check(good, twin=twin) if r.name == SAME_BUILD]
    assert same.passed, same.line()
    other = tmp_path / "other.pt"
    tiny_checkpoint(other, seed=1)  # another random net: what an unseeded factory builds the second time
    (differs,) = [
        r
        for r in check(good, twin=load_codec("bmshj2018-factorized", str(other), 1, "cpu", "tiny"))
        if r.name == SAME_BUILD
    ]
    assert not differs.passed and "a second build differs" in differs.detail and "xdist worker" in differs.detail


@pytest.mark.parametrize("what", list(BROKEN))
def test_each_broken_codec_fails_the_property_it_breaks(good, what):
    methods, prop = BROKEN[what]
    results = {r.name: r for r in check(_broken(good, **methods))}
    assert not results[prop].passed, results[prop].line()
    assert results[prop].line().startswith(f"FAIL  {prop}: ")


def test_check_codec_command_on_a_shipped_codec_and_a_checkpoint(tiny_pt):
    for spec in ("nicrobust:bmshj2018-hyperprior@q1", str(tiny_pt)):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_nicrobust", "check-codec", spec], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0 and "14 of 14 properties hold" in proc.stdout, proc.stdout + proc.stderr
        assert "\ncodec: " in proc.stdout and "sha256=" in proc.stdout  # what the codec says of itself
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_nicrobust", "check-codec", "nope:mbt2018-mean"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "expected" in proc.stderr and "Traceback" not in proc.stderr


def test_factories_get_the_keywords_they_take():
    def new_style(*, name, quality, weights, device, beta=0.0):
        return (name, quality, weights, device, beta)

    def old_style(quality, weights, device):  # written for pytest-nicrobust 0.1
        return (quality, weights, device)

    kw = {"name": "c", "quality": "b0.075", "weights": None, "device": "cpu"}
    assert call_factory(new_style, "m", **kw, beta=0.075) == ("c", "b0.075", None, "cpu", 0.075)
    assert call_factory(old_style, "m", **kw) == ("b0.075", None, "cpu")
    with pytest.raises(Exception, match="its factory takes no 'beta'"):
        call_factory(old_style, "m", **kw, beta=0.075)
