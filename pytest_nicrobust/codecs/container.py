"""The plugin's container around the strings of a CompressAI-style coder: one self-contained stream per image.

CompressAI's ``compress()`` returns strings (one list per entropy model, one string per image)
and a latent ``shape``; ``decompress(strings, shape)`` needs both. A stream of the stream API
(:meth:`~pytest_nicrobust.codecs.base.Codec._encode_padded`) carries them in this container,
big-endian (torch-free, standard library only):

=======  ======  ===========================================================================
offset   bytes   field
=======  ======  ===========================================================================
0        4       magic ``NRS1`` (a nicrobust stream, version 1)
4        2       H: height of the image the stream decodes to (the padded image), 1..65535
6        2       W: its width, 1..65535
8        1       s: the latent's stride is 2**s: ``shape = (ceil(H'/2**s), ceil(W'/2**s))``, where
                 H' x W' is the image the coder saw (H x W, or larger for a codec with a smallest
                 size), s in 0..15
9        ...     the string table: a tree in prefix order, ``L n`` (0x4C, then a count 0..64: a
                 list of n nodes) or ``B len`` (0x42, then a 4-byte length: a string), at most 4
                 levels deep and 64 strings; CompressAI's ``[[y], [z]]`` is ``L 2 L 1 B . L 1 B .``
...      ...     the strings, in the order of the table
=======  ======  ===========================================================================

Reading checks every declared size before anything is allocated: H x W at most the decoder's
``max_pixels`` (:class:`~pytest_nicrobust.codecs.base.Codec`), s the codec's own stride (another
stride would size the latents, hence the image decoded, beyond H x W), the counts and depth above,
and the strings' lengths adding up to exactly what follows the table. A stream that fails one is a
:class:`ContainerError` naming the field, never an allocation the header asked for.

What bpp counts is unchanged by the container: the strings ``compress()`` emits
(:func:`header_bytes` are left out, see ``Codec._container_bytes``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAGIC = b"NRS1"
_FIXED = struct.Struct(">4sHHB")  # magic, H, W, s
_LENGTH = struct.Struct(">I")
LIST, STRING = 0x4C, 0x42
MAX_STRINGS = 64
MAX_COUNT = 64
MAX_DEPTH = 4
MAX_SIDE = 0xFFFF
MAX_STRIDE_LOG2 = 15


class ContainerError(ValueError):
    """A stream that is not a well-formed container (or strings that cannot be put in one)."""


@dataclass
class Unpacked:
    strings: Any  # lists of bytes, nested as compress() returned them
    height: int
    width: int
    stride_log2: int
    header: int  # bytes of the container before the strings

    def shape(self, coded: tuple[int, int] | None = None) -> tuple[int, int]:
        """The latent shape for ``decompress``; ``coded``: the size the coder saw, if not (H, W)."""
        h, w = coded or (self.height, self.width)
        step = 1 << self.stride_log2
        return -(-h // step), -(-w // step)


def stride_log2(coded: tuple[int, int], shape) -> int:
    """s such that ``shape`` is the coded size over 2**s (rounded up); ContainerError otherwise."""
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ContainerError(f"compress() returned the shape {shape!r}, not (h, w)") from None
    if h >= 1 and w >= 1:
        s = round(math.log2(coded[0] / h)) if coded[0] >= h else -1
        if 0 <= s <= MAX_STRIDE_LOG2 and -(-coded[0] >> s) == h and -(-coded[1] >> s) == w:
            return s
    raise ContainerError(
        f"compress() returned the shape {(h, w)} for an image of {coded[0]}x{coded[1]}: not the image over a power of two"
    )


def _table(node, depth: int, table: bytearray, strings: list[bytes]) -> None:
    if isinstance(node, (bytes, bytearray)):
        table += bytes([STRING]) + _LENGTH.pack(len(node))
        strings.append(bytes(node))
    elif isinstance(node, (list, tuple)) and depth < MAX_DEPTH and len(node) <= MAX_COUNT:
        table += bytes([LIST, len(node)])
        for child in node:
            _table(child, depth + 1, table, strings)
    else:
        raise ContainerError(
            f"compress() returned strings holding {type(node).__name__}: the container takes bytes in lists "
            f"at most {MAX_DEPTH} deep, {MAX_COUNT} to a list"
        )


def pack(strings, size: tuple[int, int], s: int) -> bytes:
    """One stream: ``strings`` (as compress() returned them for one image), the image size, the stride."""
    h, w = size
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE and 0 <= s <= MAX_STRIDE_LOG2):
        raise ContainerError(f"an image of {h}x{w} (stride 2**{s}) does not fit the container (sides up to {MAX_SIDE})")
    table: bytearray = bytearray()
    found: list[bytes] = []
    _table(strings, 0, table, found)
    if len(found) > MAX_STRINGS:
        raise ContainerError(f"compress() returned {len(found)} strings; the container holds {MAX_STRINGS}")
    return _FIXED.pack(MAGIC, h, w, s) + bytes(table) + b"".join(found)


def unpack(stream: bytes, max_pixels: int, stride: int | None = None) -> Unpacked:
    """The container's fields, every size checked first (see the module docstring); ``stride``: the
    codec's own (log2), which a stream must declare (another would size the latents, and the image
    the decoder allocates, past what H x W says)."""
    if len(stream) < _FIXED.size:
        raise ContainerError(f"{len(stream)} bytes: shorter than the container's header ({_FIXED.size} bytes)")
    magic, h, w, s = _FIXED.unpack_from(stream)
    if magic != MAGIC:
        raise ContainerError(f"magic {magic!r} is not {MAGIC!r}: not a stream of this codec")
    if h < 1 or w < 1 or h * w > max_pixels:
        raise ContainerError(f"declared size {h}x{w}: not within 1..{max_pixels} pixels (max_pixels)")
    if s > MAX_STRIDE_LOG2 or (stride is not None and s != stride):
        want = f"this codec's is 2**{stride}" if stride is not None else f"at most 2**{MAX_STRIDE_LOG2}"
        raise ContainerError(f"declared stride 2**{s}: {want}")
    at = _FIXED.size
    lengths: list[int] = []

    def node(depth: int):
        nonlocal at
        if at >= len(stream):
            raise ContainerError("the stream ends inside the container's string table")
        tag = stream[at]
        if tag == STRING:
            if at + 1 + _LENGTH.size > len(stream):
                raise ContainerError("the stream ends inside a string's length")
            lengths.append(_LENGTH.unpack_from(stream, at + 1)[0])
            at += 1 + _LENGTH.size
            if len(lengths) > MAX_STRINGS:
                raise ContainerError(f"the string table declares more than {MAX_STRINGS} strings")
            return len(lengths) - 1
        if tag == LIST and depth < MAX_DEPTH and at + 1 < len(stream) and stream[at + 1] <= MAX_COUNT:
            n = stream[at + 1]
            at += 2
            return [node(depth + 1) for _ in range(n)]
        raise ContainerError(
            f"byte {at} of the string table ({tag:#04x}) is not a list of at most {MAX_COUNT} "
            f"within {MAX_DEPTH} levels, nor a string"
        )

    tree = node(0)
    if at + sum(lengths) != len(stream):
        raise ContainerError(f"the string table declares {sum(lengths)} bytes of strings; {len(stream) - at} follow it")
    starts = [at + sum(lengths[:i]) for i in range(len(lengths))]

    def build(t):
        return stream[starts[t] : starts[t] + lengths[t]] if isinstance(t, int) else [build(c) for c in t]

    return Unpacked(build(tree), h, w, s, at)


def header_bytes(stream: bytes) -> int:
    """Bytes of a well-formed container before its strings (what bpp leaves out)."""
    return unpack(stream, MAX_SIDE * MAX_SIDE).header


def strings_of(stream: bytes) -> tuple[list[bytes], Callable[[list[bytes]], bytes]] | None:
    """(the strings of a well-formed container, in order; a function that packs replacements for
    them back with the same header), or None: the bitstream test mutates the strings themselves."""
    try:
        found = unpack(stream, MAX_SIDE * MAX_SIDE)
    except ContainerError:
        return None
    flat: list[bytes] = []

    def index(t):
        if isinstance(t, bytes):
            flat.append(t)
            return len(flat) - 1
        return [index(c) for c in t]

    tree = index(found.strings)

    def repack(new: list[bytes]) -> bytes:
        def put(t):
            return new[t] if isinstance(t, int) else [put(c) for c in t]

        return pack(put(tree), (found.height, found.width), found.stride_log2)

    return flat, repack
