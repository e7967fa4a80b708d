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


class Streams(Codec):
    """The stream API: each stream is a 2-byte container header and the image's first pixel row."""

    def __init__(self, encode=None, decode=None):
        super().__init__(CodecInfo("streams", "toy", 1, None, random_init=True), "cpu")
        self.encode, self.decode = encode, decode

    def _forward_padded(self, x, proxy, generator):
        return x, x.flatten(1).sum(1)

    def _encode_padded(self, x):
        if self.encode:
            return self.encode(x)
        return [b"HD" + (im[:, 0] * 255).round().to(torch.uint8).numpy().tobytes() for im in x]

    def _decode_padded(self, stream):
        if self.decode:
            return self.decode(stream)
        row = torch.frombuffer(bytearray(stream[2:]), dtype=torch.uint8).float().reshape(3, 1, -1) / 255
        return row.expand(3, row.shape[2], row.shape[2])

    def _container_bytes(self, stream):
        return 2


def test_the_round_trip_of_the_stream_api_counts_each_stream_less_its_container():
    codec = Streams()
    assert codec.has_stream_api() and not Returns().has_stream_api()
    rt = codec.roundtrip(X)
    assert rt.nbytes == [3 * 64, 3 * 64] and rt.x_hat.shape == X.shape
    assert torch.equal(rt.x_hat[:, :, 5], torch.round(X[:, :, 0] * 255) / 255)


@pytest.mark.parametrize(
    "encode, decode, said",
    [
        (lambda x: [b"HD"], None, "_encode_padded gave 1 item\\(s\\) for a batch of 2"),
        (lambda x: ["text", "text"], None, "_encode_padded gave 2 item\\(s\\) for a batch of 2; want one bytes stream"),
        (
            None,
            lambda s: torch.zeros(1, 3, 64, 64),
            "_decode_padded gave \\(1, 3, 64, 64\\), want a \\(3, H, W\\) image",
        ),
        (None, lambda s: None, "_decode_padded gave NoneType"),
        (None, lambda s: torch.zeros(3, 64 + s[2] // 128, 64), "the images of one batch decode to different sizes"),
    ],
)
def test_what_the_stream_api_returns_keeps_the_contract_or_one_line_says_not(encode, decode, said):
    with pytest.raises(CodecError, match=f"codec streams: {said}"):
        Streams(encode, decode).roundtrip(X)


def test_a_codec_with_neither_round_trip_nor_streams_says_so():
    class Neither(Codec):
        pass

    with pytest.raises(NotImplementedError, match="Neither implements neither _roundtrip_padded nor"):
        Neither(CodecInfo("n", "toy", 1, None)).roundtrip(X)
