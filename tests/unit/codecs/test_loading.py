"""Codec loading (zoo cache, checkpoints, random), padding, proxies, real bitstreams."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from helpers import tiny_checkpoint

from pytest_nicrobust import CodecError
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.codecs.builtin.zoo import sha256_of


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tiny_checkpoint(tmp_path_factory.mktemp("c") / "tiny.pt", N=16, M=16)
    return load_codec("bmshj2018-factorized", str(path), 1, "cpu", label="tiny")


def test_padding_keeps_size_and_bpp_counts_unpadded_pixels(tiny):
    x = torch.rand(2, 3, 70, 45)
    out = tiny.forward(x)
    assert out.x_hat.shape == x.shape and out.bpp.shape == (2,)
    rt = tiny.roundtrip(x)
    assert rt.x_hat.shape == x.shape
    assert torch.equal(rt.x_hat, torch.round(rt.x_hat * 255) / 255)
    assert rt.bpp.tolist() == pytest.approx([8 * n / (70 * 45) for n in rt.nbytes])


def test_decoder_reproduces_the_rounded_forward_pass(tiny):
    x = torch.rand(1, 3, 64, 64)
    rounded = tiny.forward(x, proxy="ste").x_hat.clamp(0, 1)
    enc = tiny.model.compress(x)
    decoded = tiny.model.decompress(enc["strings"], enc["shape"])["x_hat"]
    assert torch.allclose(rounded, decoded.clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("proxy", ["noise", "ste"])
def test_gradients_reach_the_input_through_each_proxy(tiny, proxy):
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    out = tiny.forward(x, proxy=proxy, generator=torch.Generator().manual_seed(0))
    (out.x_hat.sum() + out.bpp.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not tiny.model.training, "the model itself stays in eval mode"


def test_noise_proxy_is_seeded(tiny):
    x = torch.rand(1, 3, 64, 64)
    a = tiny.forward(x, "noise", torch.Generator().manual_seed(3)).x_hat
    b = tiny.forward(x, "noise", torch.Generator().manual_seed(3)).x_hat
    c = tiny.forward(x, "noise", torch.Generator().manual_seed(4)).x_hat
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_init_is_labelled():
    codec = load_codec("bmshj2018-factorized", "random", 1, "cpu", label="random-bmshj2018-factorized")
    assert codec.info.random_init and codec.label.startswith("random-")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the hostile file itself
def test_checkpoint_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(CodecError, match="cannot read checkpoint"):
        load_codec("bmshj2018-factorized", str(path), 1)


def test_checkpoint_of_another_architecture_is_reported(tmp_path):
    path = tiny_checkpoint(tmp_path / "fact.pt")
    with pytest.raises(CodecError) as info:
        load_codec("mbt2018-mean", str(path), 1)
    assert str(
        info.value
    ).endswith(
        ': the checkpoint is a bmshj2018-factorized (read from its keys), not mbt2018-mean: set model = "bmshj2018-factorized"'
    )  # it was "does not fit architecture 'mbt2018-mean': RuntimeError: Error(s) in loading state_dict ... Missing key(s)"
    with pytest.raises(CodecError, match="not found"):
        load_codec("bmshj2018-factorized", str(tmp_path / "missing-{quality}.pt"), 3)


def _zoo_file(directory, monkeypatch, tamper=False):
    """A CompressAI-format checkpoint in a temporary torch hub cache, under the name the zoo expects."""
    from compressai.zoo import image

    sd = torch.load(tiny_checkpoint(directory / "raw.pt", N=16, M=16), weights_only=True)
    checkpoints = directory / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    tmp = checkpoints / "tmp.pth.tar"
    torch.save(sd, tmp)
    digest = sha256_of(tmp)
    name = f"bmshj2018-factorized-prior-3-{digest[:8]}.pth.tar"
    os.replace(tmp, checkpoints / name)
    if tamper:
        with open(checkpoints / name, "ab") as f:
            f.write(b"junk")
    monkeypatch.setenv("TORCH_HOME", str(directory))
    urls = {
        **image.model_urls["bmshj2018-factorized"]["mse"],
        3: f"http://127.0.0.1:9/{name}",
        4: "http://127.0.0.1:9/x-4-00000000.pth.tar",
    }
    monkeypatch.setitem(image.model_urls["bmshj2018-factorized"], "mse", urls)


def test_zoo_loads_offline_from_the_hub_cache(tmp_path, monkeypatch):
    _zoo_file(tmp_path, monkeypatch)
    codec = load_codec("bmshj2018-factorized", "zoo", 3)
    assert codec.info.details["file"].startswith(str(tmp_path))
    assert codec.roundtrip(torch.rand(1, 3, 64, 64)).nbytes[0] > 0


def test_a_first_zoo_download_that_fails_names_the_network_not_a_missing_folder(tmp_path, monkeypatch):
    from compressai.zoo import image

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "fresh"))  # no hub/checkpoints folder yet
    urls = {**image.model_urls["bmshj2018-factorized"]["mse"], 4: "http://127.0.0.1:9/x-4-00000000.pth.tar"}
    monkeypatch.setitem(image.model_urls["bmshj2018-factorized"], "mse", urls)
    with pytest.raises(CodecError) as info:
        load_codec("bmshj2018-factorized", "zoo", 4)
    text = str(info.value)
    assert "could not be downloaded (URLError: " in text and ".partial" not in text, text


def test_zoo_detects_a_corrupt_file_and_a_missing_one(tmp_path, monkeypatch):
    _zoo_file(tmp_path, monkeypatch, tamper=True)
    with pytest.raises(CodecError, match="corrupt or not the expected one"):
        load_codec("bmshj2018-factorized", "zoo", 3)
    with pytest.raises(CodecError, match="not in the torch hub cache"):
        load_codec("bmshj2018-factorized", "zoo", 4)
