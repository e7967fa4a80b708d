"""Small shared builders for the tests: a tiny trained-shape codec and suite files."""

from __future__ import annotations

import shutil
import textwrap

import torch


def tiny_checkpoint(path, architecture="bmshj2018-factorized", N=8, M=8, seed=0):
    """Save a small random CompressAI model as a plain state_dict (fast to attack)."""
    from compressai.zoo.image import model_architectures

    torch.manual_seed(seed)
    model = model_architectures[architecture](N=N, M=M)
    model.update(force=True)
    torch.save(model.state_dict(), path)
    return path


def write_suite(directory, name="mini.suite.toml", *, checkpoint="tiny.pt", attacks=None, images=1, crop=64, extra=""):
    attacks = attacks or '[[attacks]]\nname = "pgd"\npresets = ["eps7"]\nsteps = 2\n'
    text = f"""
images = {images}
crop = {crop}
{extra}

[[codecs]]
model = "bmshj2018-factorized"
name = "tiny"
weights = "{checkpoint}"
qualities = [1, 2]

{attacks}

[[datasets]]
name = "skimage-photos"
"""
    suites = directory / "suites"
    suites.mkdir(exist_ok=True)
    path = suites / name
    path.write_text(textwrap.dedent(text))
    return path


def write_thresholds(directory, body="[defaults]\ndelta_psnr = 100.0\n"):
    """A thresholds.toml of the test's own limits alone (``extends = false`` unless the body says otherwise)."""
    path = directory / "thresholds.toml"
    path.write_text(body if "extends" in body else "extends = false\n\n" + body)
    return path


def tiny_project(pytester, tiny_pt, thresholds="[defaults]\ndelta_psnr = 100.0\n"):
    """A pytester project: ``suites/tiny.pt`` (the tiny checkpoint) and a thresholds.toml."""
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    write_thresholds(pytester.path, thresholds)
    return pytester


def run_merge(cwd, *args, timeout=300):
    """``python -m pytest_nicrobust merge ARGS`` in ``cwd``, its output captured."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "pytest_nicrobust", "merge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
