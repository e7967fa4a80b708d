"""EVC, HiFiC and QRes-VAE adapters without their trees: the suite tables (torch-free checks), the
CUDA-call guard, the quantisation proxies, q_scale selection and the import isolation of a tree's
top-level package. The adapters on the real trees: tests/integration/test_public_trees_real_code.py."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import torch

from pytest_nicrobust import CodecError
from pytest_nicrobust.codecs.imports import importing
from pytest_nicrobust.codecs.kinds import public_trees
from pytest_nicrobust.codecs.kinds.evc import table as evc
from pytest_nicrobust.codecs.kinds.hific import table as hific
from pytest_nicrobust.codecs.kinds.qres_vae import table as qres_vae
from pytest_nicrobust.codecs.registry import TableError
from pytest_nicrobust.config.errors import SuiteError
from pytest_nicrobust.config.suite import parse_suite


def touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def dcvc(tmp_path):
    """A folder laid out like a built microsoft/DCVC checkout (empty marker files, none of its code)."""
    models = tmp_path / "DCVC" / "DCVC-family" / "EVC" / "src" / "models"
    touch(models / "image_model.py")
    touch(models / "MLCodec_rans.cpython-311-x86_64-linux-gnu.so")
    return tmp_path / "DCVC"


@pytest.fixture(autouse=True)
def no_tree_env(monkeypatch):
    for env in (evc.ENV, hific.ENV, qres_vae.ENV):
        monkeypatch.delenv(env, raising=False)


def refused(check, table, base_dir):
    with pytest.raises(TableError) as info:
        check(table, str(base_dir))
    return info.value


# -- suite tables --------------------------------------------------------------------------------


def test_evc_table_resolves_the_evc_folder_of_a_dcvc_checkout(dcvc, tmp_path):
    out = evc.check_table(
        {"model": "evc", "root": "DCVC", "weights": "random", "qualities": [0, "s1.25"]}, str(tmp_path)
    )
    assert out["options"] == {"root": str(dcvc / "DCVC-family" / "EVC"), "arch": "EVC_LL"}
    assert out["qualities"] == [0, "s1.25"] and out["weights"] == "random" and out["label"] == "random-evc"


def test_evc_root_from_the_environment_and_its_absence_named(dcvc, tmp_path, monkeypatch):
    table = {"model": "evc", "weights": "random", "qualities": [1]}
    err = refused(evc.check_table, table, tmp_path)
    assert err.key == "root" and evc.ENV in err.message
    monkeypatch.setenv(evc.ENV, str(dcvc))
    assert evc.check_table(table, str(tmp_path))["options"]["root"].endswith("EVC")


def test_evc_without_its_built_coder_says_how_to_build_it(dcvc, tmp_path):
    (dcvc / "DCVC-family" / "EVC" / "src" / "models" / "MLCodec_rans.cpython-311-x86_64-linux-gnu.so").unlink()
    err = refused(evc.check_table, {"root": str(dcvc), "weights": "random", "qualities": [0]}, tmp_path)
    assert err.key == "root" and "MLCodec_rans" in err.message and "cmake" in err.message


@pytest.mark.parametrize(
    "table, key, words",
    [
        ({"arch": "Scale_EVC_SS"}, "arch", "EVC_LL"),
        ({"qualities": [4]}, "qualities", "0..3"),
        ({"qualities": ["s0.001"]}, "qualities", "0.01"),
        ({"qualities": ["fast"]}, "qualities", "s<q_scale>"),
        ({"qualities": [True]}, "qualities", "rate index"),
        ({"qualities": []}, "qualities", "non-empty"),
        ({"weights": None}, "weights", "random"),
        ({"weights": "zoo"}, "weights", "CompressAI"),
        ({"weights": "missing.pth.tar"}, "weights", "does not exist"),
        ({"anchor_num": 8}, "anchor_num", "unknown key"),
        ({"root": "nowhere"}, "root", "not a folder"),
    ],
)
def test_evc_table_errors_name_the_key(dcvc, tmp_path, table, key, words):
    base = {"model": "evc", "root": str(dcvc), "weights": "random", "qualities": [0]}
    base.update(table)
    base = {k: v for k, v in base.items() if v is not None}
    err = refused(evc.check_table, base, tmp_path)
    assert err.key == key and words in err.message


def test_a_checkpoint_path_is_resolved_against_the_suite_folder(dcvc, tmp_path):
    touch(tmp_path / "ckpt" / "evc.pth.tar")
    out = evc.check_table({"root": str(dcvc), "weights": "ckpt/evc.pth.tar", "qualities": [0]}, str(tmp_path))
    assert out["weights"] == str(tmp_path / "ckpt" / "evc.pth.tar") and out["label"] == "evc"
    templated = evc.check_table({"root": str(dcvc), "weights": "ckpt/{quality}.pt", "qualities": [0]}, str(tmp_path))
    assert templated["weights"] == str(tmp_path / "ckpt" / "{quality}.pt")


def test_hific_and_qres_tables(tmp_path):
    touch(tmp_path / "hific" / "src" / "hyperprior.py")
    touch(tmp_path / "lossy-vae" / "lvae" / "models" / "qresvae" / "zoo.py")
    h = hific.check_table(
        {"root": "hific", "weights": "random", "qualities": ["low", "high"], "latent_channels": 64}, str(tmp_path)
    )
    assert h["options"]["latent_channels"] == 64 and h["options"]["root"] == str(tmp_path / "hific")
    assert (
        refused(hific.check_table, {"root": "hific", "weights": "random", "qualities": ["ultra"]}, tmp_path).key
        == "qualities"
    )
    assert (
        refused(
            hific.check_table,
            {"root": "hific", "weights": "random", "qualities": ["low"], "latent_channels": 0},
            tmp_path,
        ).key
        == "latent_channels"
    )
    assert (
        refused(
            hific.check_table,
            {"root": "hific", "weights": "random", "qualities": ["low"], "likelihood_type": "laplace"},
            tmp_path,
        ).key
        == "likelihood_type"
    )
    q = qres_vae.check_table({"root": "lossy-vae", "weights": "random", "qualities": [64, 2048]}, str(tmp_path))
    assert q["label"] == "random-qres-vae" and q["qualities"] == [64, 2048]
    assert (
        "16, 32"
        in refused(
            qres_vae.check_table, {"root": "lossy-vae", "weights": "random", "qualities": [100]}, tmp_path
        ).message
    )
    err = refused(qres_vae.check_table, {"root": "hific", "weights": "random", "qualities": [64]}, tmp_path)
    assert err.key == "root" and "lvae/models/qresvae/zoo.py" in err.message


def test_a_suite_names_the_file_and_key_of_a_refused_table(dcvc, tmp_path):
    suite = tmp_path / "evc.toml"
    suite.write_text(
        f'[[codecs]]\nmodel = "evc"\nroot = "{dcvc}"\nweights = "random"\nqualities = [7]\n'
        '[[attacks]]\nname = "pgd"\n[[datasets]]\nname = "skimage-photos"\n'
    )
    with pytest.raises(SuiteError) as info:
        parse_suite(str(suite))
    assert str(info.value).startswith(f"{suite}: codecs[0].qualities: 7:")
    suite.write_text(suite.read_text().replace("[7]", "[0, 3]"))
    labels = sorted({case.codec.display for case in parse_suite(str(suite)).cases})
    assert labels == ["random-evc[q0]", "random-evc[q3]"]


# -- EVC's CUDA-only calls, rounding and q_scale ---------------------------------------------------


@pytest.fixture
def syncing_module(tmp_path):
    """A module that calls torch.cuda.synchronize() as EVC's decompress does (written here)."""
    path = touch(
        tmp_path / "syncing.py",
        "import torch\n\ndef decode():\n    torch.cuda.synchronize()\n    return torch.zeros(2)\n",
    )
    spec = importlib.util.spec_from_file_location("syncing_for_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cuda_calls_are_skipped_on_cpu_and_restored_after(syncing_module):
    from pytest_nicrobust.codecs.kinds.evc.codec import cuda_calls_guarded

    with cuda_calls_guarded(syncing_module, torch.device("cpu")):
        assert torch.equal(syncing_module.decode(), torch.zeros(2))  # other torch attributes still work
        assert syncing_module.torch is not torch
    assert syncing_module.torch is torch
    with pytest.raises(ZeroDivisionError), cuda_calls_guarded(syncing_module, torch.device("cpu")):
        raise ZeroDivisionError
    assert syncing_module.torch is torch
    with cuda_calls_guarded(syncing_module, torch.device("cuda")):  # a CUDA device keeps the real call
        assert syncing_module.torch is torch


@pytest.mark.skipif(torch.cuda.is_available(), reason="the unguarded call only fails without a GPU")
def test_the_unguarded_call_fails_without_a_gpu(syncing_module):
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises without CUDA (its type changed across releases)
        syncing_module.decode()


def test_straight_through_round_and_noise_proxy():
    from pytest_nicrobust.codecs.kinds.evc.codec import proxy_quantizer, quantization_proxy

    x = torch.tensor([-1.6, -0.4, 0.2, 2.7], requires_grad=True)
    y = proxy_quantizer("ste", None)(x)
    assert y.tolist() == [-2.0, -0.0, 0.0, 3.0]
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0]  # torch.round alone gives zeros

    noisy = [proxy_quantizer("noise", torch.Generator().manual_seed(s))(torch.zeros(1000)) for s in (1, 1, 2)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.equal(noisy[0], noisy[2])
    assert noisy[0].abs().max() <= 0.5 and noisy[0].std() > 0.2

    class Net(torch.nn.Module):
        def quant(self, v):
            return torch.round(v)

    def grad_through(quant):
        v = torch.tensor([0.3, 1.2], requires_grad=True)
        quant(v).sum().backward()
        return v.grad.tolist()

    net = Net()
    with quantization_proxy(net, "ste", None):
        assert grad_through(net.quant) == [1.0, 1.0]
    assert "quant" not in vars(net) and grad_through(net.quant) == [0.0, 0.0]  # EVC's own rounding again
    with pytest.raises(ValueError):
        proxy_quantizer("round", None)


def test_q_scale_from_anchor_or_value_rounded_as_the_stream_stores_it():
    from pytest_nicrobust.codecs.kinds.evc.codec import q_scale_of

    anchors = [1.7321, 1.2, 0.85, 0.5]
    assert q_scale_of(0, anchors) == 1.73 and q_scale_of(3, anchors) == 0.5
    assert q_scale_of("s0.456", anchors) == 0.46
    with pytest.raises(CodecError, match="rate index"):
        q_scale_of(4, anchors)


def test_hific_rounds_half_up_with_an_identity_gradient():
    from pytest_nicrobust.codecs.kinds.hific.codec import proxy_quantizer

    v = torch.tensor([-1.5, -0.5, 0.5, 1.49], requires_grad=True)
    out = proxy_quantizer("ste", None)(v)
    assert out.tolist() == [-1.0, 0.0, 1.0, 1.0]  # floor(v + 0.5), as its coder rounds (not torch.round)
    out.sum().backward()
    assert v.grad.tolist() == [1.0] * 4


def test_hific_small_images_are_padded_to_its_minimum_by_replication():
    from pytest_nicrobust.codecs.kinds.hific.codec import MIN_SIZE, pad_to_min_size

    x = torch.rand(1, 3, 64, 192)
    padded = pad_to_min_size(x)
    assert padded.shape[-2:] == (MIN_SIZE, 192) and torch.equal(padded[..., :64, :], x)
    assert torch.equal(padded[..., -1, :], x[..., -1, :])  # replicate, not zeros
    big = torch.rand(1, 3, 128, 256)
    assert pad_to_min_size(big) is big


# -- importing a tree's top-level package ------------------------------------------------------------


def test_a_trees_src_package_is_imported_beside_another_src(tmp_path, monkeypatch):
    touch(tmp_path / "tree" / "src" / "__init__.py")
    touch(tmp_path / "tree" / "src" / "layer.py", "from src import helper\nVALUE = helper.twice(21)\n")
    touch(tmp_path / "tree" / "src" / "helper.py", "def twice(v):\n    return 2 * v\n")
    other = types.ModuleType("src")
    monkeypatch.setitem(sys.modules, "src", other)
    path_before = list(sys.path)
    with importing((str(tmp_path / "tree"),), tree=str(tmp_path / "tree"), names={"src"}):
        layer = importlib.import_module("src.layer")
    assert layer.VALUE == 42 and layer.helper.twice(2) == 4
    assert sys.modules["src"] is other and "src.layer" not in sys.modules and sys.path == path_before


def test_a_relative_import_package_under_an_alias(tmp_path):
    touch(tmp_path / "pkg" / "models" / "__init__.py", "from .net import build\n")
    touch(tmp_path / "pkg" / "models" / "net.py", "from ..utils.sizes import SIZE\n\ndef build():\n    return SIZE\n")
    touch(tmp_path / "pkg" / "utils" / "sizes.py", "SIZE = 64\n")
    models = public_trees.import_under_alias("_nicrobust_test_alias", str(tmp_path / "pkg"), "models")
    try:
        assert models.build() == 64 and models.__name__ == "_nicrobust_test_alias.models"
        assert "src" not in models.__name__
    finally:
        for key in [k for k in sys.modules if k.startswith("_nicrobust_test_alias")]:
            del sys.modules[key]
