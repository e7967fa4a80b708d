"""Huge but finite latents never reach CompressAI's rANS coder, which never returns on them.

The shipped factorized q1 with ``g_a.6.weight`` x 1e8 (|y| about 5e8) hung ``compress`` for ever;
the guard raises a codec error naming the codec and the images first. Each case runs in a
subprocess with a timeout, so a guard that lets one through fails instead of hanging the tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CASE = textwrap.dedent("""
    import sys, torch
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.codecs.quantization import CoderRangeError

    arch, layer, factor = sys.argv[1], sys.argv[2], float(sys.argv[3])
    codec = load_codec(arch, "nicrobust", 1)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        module = dict(codec.model.named_modules())[layer]
        module.weight.mul_(factor)
    try:
        codec._roundtrip_padded(x)
        print("coded")
    except CoderRangeError as exc:
        print("raised:", exc, exc.images)
""")


def _run(*args):
    return subprocess.run([sys.executable, "-c", CASE, *args], capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize(
    "arch, layer, what",
    [
        ("bmshj2018-factorized", "g_a.6", "the latent"),
        ("mbt2018-mean", "h_s.4", "the predicted mean"),
    ],
)
def test_huge_latents_or_means_are_a_codec_error_before_the_coder(arch, layer, what):
    proc = _run(arch, layer, "1e8")
    assert f"raised: codec {arch}: {what} is outside the entropy coder's range" in proc.stdout, (
        proc.stdout + proc.stderr
    )
    assert "[0, 1, 2]" in proc.stdout


def test_ordinary_latents_are_coded():
    proc = _run("bmshj2018-factorized", "g_a.6", "1.0")
    assert proc.stdout.strip() == "coded", proc.stdout + proc.stderr
