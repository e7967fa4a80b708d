"""LIC-TCM and ELIC from their public code, named by class in a suite (run by hand: they are not
installed here). Point the variables at clones of the repositories (docs/codecs.md says which
commits were checked), with timm and einops installed:

    NICROBUST_TCM_ROOT=/path/to/LIC_TCM      # github.com/jmliu206/LIC_TCM (MIT)
    NICROBUST_ELIC_ROOT=/path/to/ELIC        # github.com/JiangWeibeta/ELIC (Apache-2.0)

Each is checked against the codec contract (check-codec on the suite) and attacked by a 2-step
PGD with the reconstruction and bitrate objectives, with random weights (no checkpoint is needed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from helpers import write_thresholds

from pytest_nicrobust.record import from_json  # the JSON keeps a case's headline once, in modes

FAST = [
    "--nicrobust-metrics",
    "psnr,mse",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:randomly",
    "--nicrobust-no-transfer",
    "--nicrobust-timeout",
    "3000",
]

ATTACK = """
[[attacks]]
name = "pgd"
presets = ["eps7"]
steps = 2
objectives = ["recon_error", "bitrate"]

[[datasets]]
name = "skimage-photos"
"""

# ELIC's constructor takes a config object, so a suite names a few-line subclass (a team writes its own).
ELIC_BUILDER = textwrap.dedent('''
    """ELIC (JiangWeibeta/ELIC) built from keywords: its constructor takes a Config object."""
    import compressai.ops

    if not hasattr(compressai.ops, "ste_round"):  # ELIC imports ste_round, renamed quantize_ste in CompressAI 1.2
        compressai.ops.ste_round = compressai.ops.quantize_ste

    from models import ELIC
    from utils.utils import Config


    class ELICFromKeywords(ELIC):
        def __init__(self, N=192, M=320, slice_num=5, context_window=5, slice_ch=(16, 16, 32, 64, 192), quant="ste"):
            super().__init__(Config(N=N, M=M, slice_num=slice_num, context_window=context_window,
                                    slice_ch=list(slice_ch), quant=quant))
    ''')


def _root(variable):
    root = os.environ.get(variable)
    if not root:
        pytest.skip(f"${variable} is not set: point it at a clone of the public repository (see this module)")
    if not os.path.isdir(root):
        pytest.fail(f"${variable}={root} is not a folder")
    return root


def _tcm_table():
    root = _root("NICROBUST_TCM_ROOT")
    return (
        f'class = "models:TCM"\npath = "{root}"\noptions = {{ N = 64, M = 320 }}\nweights = "random"\n'
        'multiple = 128\nmin_size = 256\nname = "random-tcm"\n'
    )


def _elic_table(folder):
    root = _root("NICROBUST_ELIC_ROOT")
    (folder / "elic_builder.py").write_text(ELIC_BUILDER)
    # ELIC's tree goes first on sys.path (its top-level packages are models, utils, modules);
    # the builder is found in the suite's folder
    return f'class = "elic_builder:ELICFromKeywords"\npath = "{root}"\nweights = "random"\nname = "random-elic"\n'


TABLES = {"tcm": _tcm_table, "elic": _elic_table}


@pytest.fixture(params=list(TABLES))
def suite(request, pytester):
    folder = pytester.path / "suites"
    folder.mkdir()
    write_thresholds(pytester.path)
    table = TABLES[request.param](folder) if request.param == "elic" else TABLES[request.param]()
    path = folder / f"{request.param}.suite.toml"
    path.write_text(f"images = 1\ncrop = 256\nworst_case = false\n\n[[codecs]]\n{table}\n{ATTACK}")
    return pytester, path, f"random-{request.param}"


def test_check_codec_passes(suite):
    _, path, label = suite
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_nicrobust",
            "check-codec",
            str(path),
            "--codec",
            label,
            "--time-limit",
            "1200",
        ],  # large models on a shared CPU
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert proc.returncode == 0 and "14 of 14 properties hold" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_pgd_with_the_reconstruction_and_bitrate_objectives(suite, tmp_path):
    pytester, path, label = suite
    out = tmp_path / "r.json"
    result = pytester.runpytest_subprocess(str(path), "--nicrobust-json", str(out), *FAST)
    result.assert_outcomes(passed=2)
    tests = {t["params"]["objective"]: from_json(t) for t in json.loads(out.read_text())["tests"]}
    assert set(tests) == {"recon_error", "bitrate"}
    for t in tests.values():
        assert t["codec"]["label"] == label and t["codec"]["random_init"]
        assert t["mean"]["psnr_inputs"] < 60, "the attack changed the image"
