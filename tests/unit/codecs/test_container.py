"""The plugin's container around CompressAI-style strings (codecs/container.py): every declared size checked."""

from __future__ import annotations

import struct

import pytest
import torch

from pytest_nicrobust.codecs import container
from pytest_nicrobust.codecs.container import ContainerError


def test_strings_and_size_come_back_as_packed():
    strings = [[b"y" * 10], [b"zz"], [[b"a", b""], [b"deep"]]]
    stream = container.pack(strings, (256, 192), 6)
    found = container.unpack(stream, 256 * 192)
    assert found.strings == strings and (found.height, found.width, found.stride_log2) == (256, 192, 6)
    assert found.shape() == (4, 3) and found.shape((320, 192)) == (5, 3)
    assert container.header_bytes(stream) == len(stream) - 17  # bpp counts the strings only
    assert container.stride_log2((256, 192), (4, 3)) == 6 and container.stride_log2((100, 70), (2, 2)) == 6


@pytest.mark.parametrize(
    "shape, said",
    [((5, 3), "not the image over a power of two"), ((4,), "not \\(h, w\\)"), (None, "not \\(h, w\\)")],
)
def test_a_shape_that_is_not_the_image_over_a_power_of_two_has_no_stream(shape, said):
    with pytest.raises(ContainerError, match=said):
        container.stride_log2((256, 192), shape)


def _stream():
    return container.pack([[b"y" * 12], [b"z" * 4]], (64, 64), 6)


@pytest.mark.parametrize(
    "edit, said",
    [
        (lambda s: s[:5], "shorter than the container's header"),
        (lambda s: b"XRS1" + s[4:], "not a stream of this codec"),
        (
            lambda s: s[:4] + struct.pack(">HH", 0xFFFF, 0xFFFF) + s[8:],
            "declared size 65535x65535: not within 1..16384",
        ),
        (lambda s: s[:4] + struct.pack(">HH", 0, 64) + s[8:], "declared size 0x64"),
        (lambda s: s[:8] + b"\x10" + s[9:], "stride 2\\*\\*16"),
        (lambda s: s[:9] + b"\x4c\xff" + s[11:], "not a list of at most 64"),
        (lambda s: s[:9] + b"\x00" + s[10:], "is not a list"),
        (lambda s: s[:-1], "declares 16 bytes of strings; 15 follow it"),
        (lambda s: s + b"!", "declares 16 bytes of strings; 17 follow it"),
        (lambda s: s[:13], "ends inside the container's string table"),
        (lambda s: s[:15], "ends inside a string's length"),
        (lambda s: s[:-16].replace(b"\x00\x00\x00\x0c", b"\xff\xff\xff\xff", 1) + s[-16:], "declares 4294967299 bytes"),
    ],
)
def test_every_declared_size_is_checked_before_anything_is_allocated(edit, said):
    with pytest.raises(ContainerError, match=said):
        container.unpack(edit(_stream()), 128 * 128)


def test_a_stride_other_than_the_codecs_own_is_refused():
    """A stride of 2**0 where the codec's is 2**6 would have its latents, and the image it decodes,
    4096 times larger than the H x W the header declares (found by the bitstream tests: a hang)."""
    stream = _stream()
    assert container.unpack(stream, 4096, stride=6).stride_log2 == 6
    with pytest.raises(ContainerError, match="declared stride 2\\*\\*0: this codec's is 2\\*\\*6"):
        container.unpack(stream[:8] + b"\x00" + stream[9:], 4096, stride=6)


def test_a_compressai_codec_knows_its_stride_and_refuses_another():
    from pytest_nicrobust.codecs import load_codec

    codec = load_codec("bmshj2018-factorized", "nicrobust", 1)
    assert codec.latent_stride() == 4  # its y: the image over 16
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    stream = codec._encode_padded(x)[0]
    assert codec._decode_padded(stream).shape == (3, 64, 64)
    with pytest.raises(ContainerError, match="declared stride 2\\*\\*0"):
        codec._decode_padded(stream[:8] + b"\x00" + stream[9:])


def test_a_table_too_deep_or_too_wide_is_refused_both_ways():
    with pytest.raises(ContainerError, match="at most 4 deep"):
        container.pack([[[[[b"x"]]]]], (64, 64), 6)
    with pytest.raises(ContainerError, match="holds 64"):
        container.pack([[b"x"] * 40, [b"x"] * 40], (64, 64), 6)
    deep = container.pack([[[[b"x"]]]], (64, 64), 6)
    assert container.unpack(deep, 4096).strings == [[[[b"x"]]]]
    with pytest.raises(ContainerError, match="within 4 levels"):
        container.unpack(deep[:9] + b"\x4c\x01" + deep[9:], 4096)
    with pytest.raises(ContainerError, match="does not fit the container"):
        container.pack([b"x"], (70000, 64), 6)


def test_strings_of_lets_the_strings_be_replaced_under_the_same_header():
    stream = _stream()
    strings, repack = container.strings_of(stream)
    assert strings == [b"y" * 12, b"z" * 4]
    changed = container.unpack(repack([b"", b"z" * 4]), 4096)
    assert changed.strings == [[b""], [b"z" * 4]] and (changed.height, changed.stride_log2) == (64, 6)
    assert container.strings_of(b"not a container") is None
