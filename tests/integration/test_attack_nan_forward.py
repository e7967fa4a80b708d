"""An external codec whose differentiable forward gives NaN used to pass with a weakened attack
(ΔPSNR 0.24 against an honest 1.11); now the test fails naming the attack, the step and the images."""

from __future__ import annotations

import json
import shutil

from helpers import write_thresholds

CODEC = """
import torch
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.codecs.base import Codec


class NanForward(Codec):
    def __init__(self, inner):
        super().__init__(inner.info, inner.device)
        self.inner = inner

    def _forward_padded(self, x, proxy, generator):
        x_hat, bits = self.inner._forward_padded(x, proxy, generator)
        return x_hat * float("nan"), bits

    def _roundtrip_padded(self, x):
        return self.inner._roundtrip_padded(x)


def make(name, quality, weights, device):
    return NanForward(load_codec("bmshj2018-factorized", weights, 1, device, name))
"""


def test_a_nan_objective_fails_the_test_naming_attack_step_and_images(pytester, tiny_pt, tmp_path):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    (pytester.path / "nanfwd.py").write_text(CODEC)
    (pytester.path / "suites" / "s.suite.toml").write_text(
        'images = 2\ncrop = 64\nworst_case = false\n\n[[codecs]]\nmodel = "nanfwd:make"\nname = "nanfwd"\n'
        'weights = "tiny.pt"\n\n[[attacks]]\nname = "pgd"\nsteps = 2\n\n[[datasets]]\nname = "skimage-photos"\n'
    )
    write_thresholds(pytester.path)
    out = tmp_path / "r.json"
    result = pytester.runpytest_subprocess(
        "suites",
        f"--nicrobust-json={out}",
        "--nicrobust-metrics",
        "psnr,mse",
        "-p",
        "no:randomly",
        "--nicrobust-no-transfer",
        timeout=300,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*2 image(s) failed, 0 measured*",
            "*astronaut: codec error: attack pgd (objective recon_error): the objective is "
            "NaN or infinite at step 0 for image(s) ?0? of the batch*",
            "*coffee: codec error: attack pgd (objective recon_error): the objective is NaN*",
        ]
    )
    (test,) = json.loads(out.read_text())["tests"]
    assert test["outcome"] == "failed" and "objective is NaN" in test["errors"][0]["error"]
