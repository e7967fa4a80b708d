"""Why the codec failed on an image reaches the suite in the codec's own words: the entropy coder's
range, a decoded image outside [0, 1], a NaN (it used to read "gives NaN or infinite values" for all)."""

from __future__ import annotations

import torch

from pytest_nicrobust.codecs.base import Codec, CodecInfo
from pytest_nicrobust.codecs.quantization import CoderRangeError
from pytest_nicrobust.run.measure import codec_failure, roundtrip_each


class Failing(Codec):
    multiple = 1

    def __init__(self, how):
        super().__init__(CodecInfo("ours", "test", 1, None))
        self.how = how

    def _forward_padded(self, x, proxy, generator):  # pragma: no cover - not used here
        return x, torch.ones(x.shape[0])

    def _roundtrip_padded(self, x):
        if self.how == "range" and x.shape[0] == 2:  # the guard in front of CompressAI's coder, on the first image
            raise CoderRangeError(
                "codec ours: the latent is outside the entropy coder's range (|value| up to 5e+08 > 1e+05) "
                "for image(s) [0] of the batch",
                [0],
            )
        return (x * 255 if self.how == "units" else x), [10] * x.shape[0]


def _failure(how, what):
    bad: dict = {}
    coded = roundtrip_each(Failing(how), torch.rand(2, 3, 8, 8), bad, what)
    return coded, bad, str(codec_failure("ours[q1]", bad))


def test_the_coder_range_error_reaches_the_suite_as_it_is():
    coded, bad, line = _failure("range", "x' (undefended)")
    assert sorted(coded) == [1] and sorted(bad) == [0]
    assert line == (
        "codec ours[q1]: x' (undefended): the latent is outside the entropy coder's range (|value| up to 5e+08 > 1e+05)"
    )


def test_decoded_values_outside_0_1_reach_the_suite_as_they_are():
    coded, bad, line = _failure("units", "the clean image")
    assert coded == {} and sorted(bad) == [0, 1]
    assert line.startswith("codec ours[q1]: the clean image: the decoded image spans [")
    assert line.endswith("not [0, 1] (wrong units?)") and "NaN" not in line
