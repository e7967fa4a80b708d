"""Codecs named by class: a team's subclass of a CompressAI model beside the suite, research-code
quirks, the errors."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from pytest_nicrobust import CodecError
from pytest_nicrobust.codecs import check
from pytest_nicrobust.codecs.kinds.by_class.codec import ClassCodec
from pytest_nicrobust.codecs.kinds.by_class.table import check_table
from pytest_nicrobust.codecs.loading import load_codec
from pytest_nicrobust.codecs.registry import TableError

HYPERPRIOR = {"class": "team_nets:ScaleHyperprior", "options": {"N": 16, "M": 24}}
TEAM_NETS = (
    "from compressai.models import ScaleHyperprior as Base\n\n\nclass ScaleHyperprior(Base):\n    pass\n\n\n"
    "def build(N, M):\n    return ScaleHyperprior(N, M)\n"
)


@pytest.fixture(autouse=True)
def team_nets(tmp_path):
    """The team's model beside the suite: a subclass of CompressAI's (CompressAI itself is not the suite's code)."""
    (tmp_path / "team_nets.py").write_text(TEAM_NETS)
    yield
    sys.modules.pop("team_nets", None)


def build(table, base, quality=None):
    """As a run loads it: through load_codec, under the seed of the run and the codec's label."""
    t = check_table(table, str(base))
    q = quality if quality is not None else t["qualities"][0]
    return load_codec("class", t["weights"], q, "cpu", t["label"], t["options"])


def _saved(path, wrap=None, seed=1):
    from compressai.models import ScaleHyperprior

    torch.manual_seed(seed)
    net = ScaleHyperprior(N=16, M=24)
    net.update(force=True)
    state = net.state_dict()
    if wrap == "state_dict":
        state = {"epoch": 3, "state_dict": state}
    elif wrap == "module.":
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, path)
    return net


def test_random_weights_are_seeded_labelled_and_keep_the_contract(tmp_path):
    a, b = build({**HYPERPRIOR, "weights": "random"}, tmp_path), build({**HYPERPRIOR, "weights": "random"}, tmp_path)
    assert isinstance(a, ClassCodec) and a.label == "random-ScaleHyperprior" and a.info.random_init
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    results = check(a)
    assert all(r.passed for r in results), [r.line() for r in results if not r.passed]


@pytest.mark.parametrize("wrap", [None, "state_dict", "module."])
def test_a_saved_state_dict_is_loaded(tmp_path, wrap):
    net = _saved(tmp_path / "q3.pth.tar", wrap)
    codec = build({**HYPERPRIOR, "weights": "q{quality}.pth.tar", "qualities": [3], "name": "ours"}, tmp_path)
    assert codec.label == "ours" and codec.info.details["file"] == str(tmp_path / "q3.pth.tar")
    assert torch.equal(codec.model.g_a[0].weight, net.g_a[0].weight)
    x = torch.rand(2, 3, 70, 45)
    rt = codec.roundtrip(x)
    with torch.no_grad():
        enc = net.compress(torch.nn.functional.pad(x[:1], (0, 19, 0, 58), mode="replicate"))
    assert rt.nbytes[0] == sum(len(s[0]) for s in enc["strings"]), "the bytes of the model's own compress()"
    assert rt.x_hat.shape == x.shape


RESEARCH_MODEL = textwrap.dedent('''
    """A CompressAI model written like research code: one stream per batch, CUDA calls, global flags."""
    import torch
    from compressai.models import FactorizedPrior

    class OneAtATime(FactorizedPrior):
        def __init__(self, N, M, scale=1.0, shift=0.0):
            super().__init__(N, M)
            self.scale, self.shift = scale, shift

        def compress(self, x):
            assert x.shape[0] == 1, "codes one image at a time"
            return super().compress(x)

        def decompress(self, strings, shape):  # no clamp, CUDA calls, a global flag: as research code does
            torch.backends.cudnn.deterministic = True
            torch.cuda.synchronize()
            return {"x_hat": super().decompress(strings, shape)["x_hat"] * self.scale + self.shift}
    ''')


def test_research_code_quirks_are_handled(tmp_path):
    (tmp_path / "code" / "models").mkdir(parents=True)
    (tmp_path / "code" / "models" / "__init__.py").write_text(RESEARCH_MODEL)
    codec = build(
        {
            "class": "models:OneAtATime",
            "path": "code",
            "options": {"N": 8, "M": 8},
            "weights": "random",
            "multiple": 32,
            "min_size": 128,
        },
        tmp_path,
    )
    flag = torch.backends.cudnn.deterministic
    rt = codec.roundtrip(torch.rand(2, 3, 40, 50))
    assert len(rt.nbytes) == 2 and rt.x_hat.shape == (2, 3, 40, 50)
    assert torch.backends.cudnn.deterministic == flag
    out = codec.forward(torch.rand(1, 3, 40, 50))
    assert out.x_hat.shape == (1, 3, 40, 50)


@pytest.mark.parametrize("scale, shift, decodes", [(1.0, -0.8, True), (255.0, 128.0, False)])
def test_decoded_images_are_clamped_unless_in_other_units(tmp_path, scale, shift, decodes):
    (tmp_path / "code" / "models").mkdir(parents=True)
    (tmp_path / "code" / "models" / "__init__.py").write_text(RESEARCH_MODEL)
    codec = build(
        {
            "class": "models:OneAtATime",
            "path": "code",
            "weights": "random",
            "options": {"N": 8, "M": 8, "scale": scale, "shift": shift},
        },
        tmp_path,
    )
    x = torch.rand(1, 3, 64, 64)
    if decodes:  # values down to -0.8: an image all the same, clamped as CompressAI's decoders clamp
        assert float(codec.roundtrip(x).x_hat.min()) == 0.0
    else:  # 0-255: not an image in [0, 1], refused by the base class
        with pytest.raises(CodecError, match="wrong units"):
            codec.roundtrip(x)


def test_two_codecs_with_a_models_package_each(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "models").mkdir(parents=True)
        (tmp_path / name / "models" / "__init__.py").write_text(
            f"from compressai.models import FactorizedPrior\nclass Net(FactorizedPrior):\n    TREE = {name!r}\n"
        )
    a = build(
        {"class": "models:Net", "path": "a", "options": {"N": 8, "M": 8}, "weights": "random", "name": "a"}, tmp_path
    )
    b = build(
        {"class": "models:Net", "path": "b", "options": {"N": 8, "M": 8}, "weights": "random", "name": "b"}, tmp_path
    )
    assert (type(a.model).TREE, type(b.model).TREE) == ("a", "b")


@pytest.mark.parametrize(
    "table, key, message",
    [
        ({"class": "ScaleHyperprior", "weights": "random"}, "class", "expected 'module:Class'"),
        ({**HYPERPRIOR, "weights": "random", "path": "nowhere"}, "path", "does not exist"),
        ({**HYPERPRIOR, "weights": "missing-{quality}.pt", "qualities": [1]}, "weights", "missing-1.pt does not exist"),
        ({**HYPERPRIOR}, "weights", 'or "random"'),
        ({**HYPERPRIOR, "weights": "random", "options": 3}, "options", "table of constructor keywords"),
        ({**HYPERPRIOR, "weights": "random", "model": "mbt2018"}, "model", "not model or spec too"),
        ({**HYPERPRIOR, "weights": "random", "multiple": 64, "min_size": 100}, "min_size", "not a multiple"),
        ({**HYPERPRIOR, "weights": "random", "colour": "red"}, "colour", "unknown key"),
    ],
)
def test_table_errors_name_the_key_without_torch(tmp_path, table, key, message):
    with pytest.raises(TableError, match=message) as info:
        check_table(table, str(tmp_path))
    assert info.value.key == key


@pytest.mark.parametrize(
    "table, message",
    [
        ({"class": "no_such_module_here:Net", "weights": "random"}, r"class: cannot import 'no_such_module_here'"),
        (
            {"class": "team_nets:NoSuchNet", "weights": "random"},
            r"class: module 'team_nets' .* no attribute",
        ),
        ({"class": "torch.nn:Identity", "weights": "random"}, r"class: 'torch' is an installed package .* refused"),
        (
            {"class": "team_nets:build", "options": {"N": 16, "M": 24}, "weights": "random"},
            r"class: team_nets:build is a function, not a class of torch.nn.Module.* refused before calling it",
        ),
        (
            {
                "class": "team_nets:ScaleHyperprior",
                "options": {"N": 16, "M": 24, "depth": 3},
                "weights": "random",
            },
            r"options: team_nets:ScaleHyperprior\(N=16, M=24, depth=3\) raised TypeError",
        ),
        (
            {"class": "team_nets:ScaleHyperprior", "options": {"N": 16}, "weights": "random"},
            r"options: team_nets:ScaleHyperprior does not take them: missing a required argument: 'M'",
        ),
        (
            {"class": "team_nets:ScaleHyperprior", "options": {"N": 32, "M": 24}, "weights": "q.pt"},
            r"weights: .*q.pt does not fit ScaleHyperprior: RuntimeError: Error\(s\) in loading state_dict",
        ),
    ],
)
def test_load_errors_are_one_line_naming_the_key(tmp_path, table, message):
    _saved(tmp_path / "q.pt")
    with pytest.raises(CodecError, match=message) as info:
        build(table, tmp_path)
    assert "\n" not in str(info.value) and str(info.value).startswith("codec ")
