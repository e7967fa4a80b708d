"""No false pass: codecs whose differentiable pass misleads the attacks, while their real bytes and
decoded images are exactly those of the shipped hyperprior q3, are named (gradient masking), and
their worst case still recovers the damage the honest codec takes; the honest codec is not named.

A detached branch and a rounding without straight-through hide the rate's gradient entirely (the
``bitrate`` objective); for ``recon_error`` their attacks still follow x' itself (the objective holds it)
and reach 0.89x and 0.96x the honest codec's ΔPSNR, which is not masking worth a warning. The reversed
gradient misleads both."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import resources

import pytest
from helpers import write_thresholds

from pytest_nicrobust.outputs.schema import problems
from pytest_nicrobust.record import from_json

SCHEMA = json.loads((resources.files("pytest_nicrobust") / "results.schema.json").read_text())

MASKERS = '''
import torch

from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.codecs.builtin.compressai_models import CompressAICodec


class _Reversed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Detached(CompressAICodec):
    """A detached branch: the reconstruction and the bits have no path back to the input."""

    def _forward_padded(self, x, proxy, generator):
        return super()._forward_padded(x.detach(), proxy, generator)


class RoundNoSTE(CompressAICodec):
    """Rounding without straight-through: the model's own eval-mode rounding, gradient zero at every latent."""

    def _forward_padded(self, x, proxy, generator):
        out = self.model(x)
        bits = sum((-torch.log2(lk)).flatten(1).sum(dim=1) for lk in out["likelihoods"].values())
        return out["x_hat"], bits


class Reversed(CompressAICodec):
    """A proxy that disagrees with the coder: the same values, the gradient pointing downhill."""

    def _forward_padded(self, x, proxy, generator):
        return super()._forward_padded(_Reversed.apply(x), proxy, generator)


def _wrap(cls, name, device):
    codec = load_codec("bmshj2018-hyperprior", "nicrobust", 3, device, name)
    codec.__class__ = cls
    return codec


def detached(name, quality, weights, device):
    return _wrap(Detached, name, device)


def round_no_ste(name, quality, weights, device):
    return _wrap(RoundNoSTE, name, device)


def reversed_gradient(name, quality, weights, device):
    return _wrap(Reversed, name, device)
'''

SUITE = """
images = 2
crop = 128

[[codecs]]
model = "bmshj2018-hyperprior"
weights = "nicrobust"
qualities = [3]
name = "honest"

[[codecs]]
model = "maskers:detached"
name = "detached"

[[codecs]]
model = "maskers:round_no_ste"
name = "round-no-ste"

[[codecs]]
model = "maskers:reversed_gradient"
name = "reversed"

[[attacks]]
name = "pgd"
presets = ["eps7"]
objectives = ["recon_error", "bitrate"]
steps = 6

[[attacks]]
name = "square"
presets = ["eps7"]
objectives = ["recon_error", "bitrate"]
queries = 30

[[attacks]]
name = "noise"
presets = ["eps7"]

[[datasets]]
name = "skimage-photos"
"""
MASKED = ("detached", "round-no-ste", "reversed")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A project holding the masking adapters and the suite (one per module: the run is shared)."""
    root = tmp_path_factory.mktemp("masking")
    (root / "maskers.py").write_text(textwrap.dedent(MASKERS))
    (root / "suites").mkdir()
    (root / "suites" / "masking.suite.toml").write_text(textwrap.dedent(SUITE))
    write_thresholds(root, "[defaults]\ndelta_psnr = 100.0\nbitrate_increase = 100.0\n")
    return root


def test_masked_codecs_are_named_and_their_worst_case_recovers(run):
    out = run / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/masking.suite.toml",
            "-p",
            "no:cacheprovider",
            "--nicrobust-json",
            str(out),
            "--nicrobust-metrics",
            "psnr",
            "--nicrobust-cache",
            str(run / "cache"),
            "-q",
        ],
        cwd=run,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    text = proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert not problems(doc, SCHEMA), problems(doc, SCHEMA)
    worst = {t["params"]["codec"]: from_json(t) for t in doc["tests"] if t["kind"] == "worst-case"}
    assert set(worst) == {"honest", *MASKED}, text[-3000:]
    assert worst["honest"]["masking"] == [], worst["honest"]["masking"]
    honest = worst["honest"]["mean"]["delta_psnr"]
    for label in MASKED:
        lines = [s["line"] for s in worst[label]["masking"]]
        assert lines and all("gradient masking suspected on " + label in line for line in lines), (label, lines)
        assert any(f"gradient masking suspected on {label}" in line for line in text.splitlines()), text[-3000:]
        recovered = worst[label]["mean"]["delta_psnr"]
        assert recovered >= 0.9 * honest, (label, recovered, honest)
        assert worst[label]["winner_kinds"]["delta_psnr"].get("transfer", 0) >= 1, worst[label]["winner_kinds"]
    verdict = [row for row in text.splitlines() if row.startswith("nicrobust verdict:")]
    assert verdict and all(f"gradient masking suspected on {', '.join(sorted(MASKED))}" in row for row in verdict)


@pytest.mark.parametrize("factory", ["detached", "round_no_ste", "reversed_gradient"])
def test_check_codec_names_a_masked_adapter(run, factory):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_nicrobust", "check-codec", f"maskers:{factory}"],
        cwd=run,
        capture_output=True,
        text=True,
        timeout=900,
    )
    line = next((row for row in proc.stdout.splitlines() if "points uphill on the real codec" in row), "")
    assert proc.returncode == 1 and line.startswith("FAIL"), proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "rounding without straight-through" in line
