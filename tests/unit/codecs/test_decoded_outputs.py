"""What a codec's round trip returns keeps the contract, or one clear line (or a warning) says not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_nicrobust import CodecError, NicrobustWarning
from pytest_nicrobust.codecs.base import Codec, CodecInfo, NonFiniteError


class Returns(Codec):
    def __init__(self, x_hat=None, nbytes=None):
        super().__init__(CodecInfo("ret", "toy", 1, None, random_init=True), "cpu")
        self.x_hat, self.nbytes = x_hat, nbytes

    def _forward_padded(self, x, proxy, generator):
        return x, x.flatten(1).sum(1)

    def _roundtrip_padded(self, x):
        x_hat = x if self.x_hat is None else self.x_hat(x)
        return x_hat, [100] * x.shape[0] if self.nbytes is None else self.nbytes


X = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_an_empty_bytes_list_is_one_line():
    with pytest.raises(CodecError, match=r"codec ret: the round trip gave byte counts \[\] for a batch of 2 image"):
        Returns(nbytes=[]).roundtrip(X)


@pytest.mark.parametrize("nbytes", [[b"ab", b"c"], [1.5, 2], [-1, 3], None.__class__])
def test_byte_counts_that_are_not_counts_are_refused(nbytes):
    with pytest.raises(CodecError, match="want one count"):
        Returns(nbytes=nbytes).roundtrip(X)


def test_numpy_and_tensor_counts_are_counts():
    rt = Returns(nbytes=[np.int64(100), torch.tensor(200)]).roundtrip(X)
    assert rt.bpp.tolist() == [8 * 100 / 4096, 8 * 200 / 4096]


def test_decoded_images_in_the_wrong_units_are_a_codec_error_naming_them():
    with pytest.raises(
        NonFiniteError, match=r"spans \[.*, 2\d\d(\.\d+)?\] for image\(s\) \[1\] of the batch, not \[0, 1\]"
    ) as info:
        Returns(x_hat=lambda x: torch.cat([x[:1], x[1:] * 255])).roundtrip(X)
    assert info.value.images == [1]


def test_a_decoded_image_slightly_out_of_range_is_clamped_with_one_warning():
    codec = Returns(x_hat=lambda x: x * 1.05 - 0.01)
    with pytest.warns(NicrobustWarning, match=r"codec ret: the decoded image reaches .*clamped to \[0, 1\]"):
        rt = codec.roundtrip(X)
    assert float(rt.x_hat.max()) <= 1 and float(rt.x_hat.min()) >= 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec.roundtrip(X)  # once per codec


def test_a_decoded_batch_of_the_wrong_shape_is_one_line():
    with pytest.raises(CodecError, match=r"the decoded batch is \(2, 3, 32, 32\), want \(2, 3, 64, 64\)"):
        Returns(x_hat=lambda x: x[..., :32, :32]).roundtrip(X)
