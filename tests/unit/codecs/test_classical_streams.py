"""The classical codecs as stream codecs (codecs/builtin/classical.py): Pillow's files, bounded before decoding."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from pytest_nicrobust.codecs.builtin import classical
from pytest_nicrobust.names import CLASSICAL

X = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("fmt", CLASSICAL)
def test_a_stream_is_the_file_pillow_writes_and_its_round_trip_is_the_transfer_targets(fmt):
    codec = classical.ClassicalCodec(fmt)
    assert codec.has_stream_api() and not codec.differentiable
    streams = codec._encode_padded(X)
    q = classical.STREAM_QUALITY[fmt]
    assert streams == [classical.encode(classical.to_pixels(im), fmt, q) for im in X]
    rt, transfer = codec.roundtrip(X), classical.roundtrip(X, fmt, [q, q])
    assert torch.equal(rt.x_hat, transfer.x_hat) and rt.nbytes == transfer.nbytes == [len(s) for s in streams]
    assert codec.info.details["pillow"] and "libjpeg" in codec.info.details


def test_a_file_that_declares_more_than_max_pixels_is_refused_from_its_header():
    data = bytearray(classical.encode(np.zeros((16, 16, 3), np.uint8), "jpeg", 75))
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", 3000, 3000)
    with pytest.raises(ValueError, match="declared size 3000x3000: more than 4096 pixels"):
        classical.decode(bytes(data), max_pixels=4096)
    codec = classical.ClassicalCodec("jpeg")
    codec.max_pixels = 4096
    with pytest.raises(ValueError, match="declared size"):
        codec._decode_padded(bytes(data))


def test_an_unknown_format_is_one_line():
    with pytest.raises(ValueError, match="unknown classical codec 'gif'"):
        classical.ClassicalCodec("gif")
    with pytest.raises(NotImplementedError, match="jpeg is not differentiable"):
        classical.ClassicalCodec("jpeg").forward(X)
