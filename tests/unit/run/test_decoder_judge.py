"""What a decode gave, judged against the decoder's contract (run/decoder_child.py: describe, judge)."""

from __future__ import annotations

import re

import pytest
import torch

from pytest_nicrobust.child import Reply
from pytest_nicrobust.run.decoder_child import describe, judge


def decoded(x, max_pixels=4096):
    value, _ = describe(x, max_pixels)
    return judge(Reply("ok", value), max_pixels)


def test_a_finite_image_within_the_bounds_is_an_image_named_by_its_hash():
    out = decoded(torch.full((3, 32, 48), 0.5))
    assert out.status == "image" and out.detail == "a 32x48 image" and len(out.digest) == 64
    assert decoded(torch.full((3, 32, 48), 0.5)).digest == out.digest != decoded(torch.zeros(3, 32, 48)).digest


@pytest.mark.parametrize(
    "x, said",
    [
        (torch.full((3, 8, 8), float("nan")), "holding NaN or infinite values"),
        (torch.full((3, 8, 8), 255.0), r"values in \[255, 255\], not \[0, 1\]"),
        (torch.zeros(1, 3, 8, 8), r"a tensor of shape \(1, 3, 8, 8\), not \(3, H, W\)"),
        (torch.zeros(4, 8, 8), r"a tensor of shape \(4, 8, 8\)"),
        (torch.zeros(3, 1, 1).expand(3, 100000, 100000), "an image of 100000x100000, more than max_pixels"),
        (None, "returned NoneType, not an image tensor"),
    ],
)
def test_what_breaks_the_contract_is_bad_output(x, said):
    out = decoded(x)
    assert out.status == "bad"
    assert re.search(said, out.detail), out.detail


def test_hangs_crashes_and_exceptions_and_a_real_stream_that_must_decode():
    assert judge(Reply("hang", error="no answer within 5 s"), 4096).status == "hang"
    assert judge(Reply("crash", error="killed by SIGSEGV"), 4096).detail == "killed by SIGSEGV"
    error = judge(Reply("error", error="ValueError: truncated"), 4096)
    assert (error.status, error.digest) == ("error", "ValueError")
    own = judge(Reply("error", error="ValueError: truncated"), 4096, expect=(64, 64))
    assert own.status == "bad" and own.detail == "its own stream does not decode: ValueError: truncated"
    value, _ = describe(torch.zeros(3, 32, 64), 1 << 20)
    assert judge(Reply("ok", value), 1 << 20, expect=(64, 64)).detail == (
        "its own stream decodes to 32x64, smaller than the 64x64 image"
    )
