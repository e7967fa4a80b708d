"""Codecs whose decoders break on mutated streams, one way each, for the bitstream tests' own tests.

A stream: magic ``TOY1``, height and width (two uint16), the payload's length (uint32), then the
image downsampled 8x, one byte a value. Decoder flavours (the suite key ``flavour``):

* ``good``: checks every field and raises on anything wrong;
* ``hang``: waits for payload bytes a truncated stream never has (a loop that never ends);
* ``segfault``: a corrupted magic makes it read address 0 (ctypes); ``abort``: ``os.abort()``;
* ``size``: trusts the declared size and returns an image that large (no bound);
* ``plain``: no stream API at all (``_roundtrip_padded`` only).
"""

from __future__ import annotations

import ctypes
import os
import struct

import torch
import torch.nn.functional as F

from pytest_nicrobust.codecs.base import Codec, CodecInfo

HEAD = struct.Struct(">4sHHI")
MAGIC = b"TOY1"


class ToyCodec(Codec):
    multiple = 8

    def __init__(self, flavour: str, info: CodecInfo, device):
        super().__init__(info, device)
        self.flavour = flavour

    def _forward_padded(self, x, proxy, generator):
        small = F.avg_pool2d(x, 8)
        return F.interpolate(small, scale_factor=8, mode="nearest"), torch.full((x.shape[0],), 8.0 * small[0].numel())

    def _encode_padded(self, x):
        out = []
        for im in x:
            payload = (F.avg_pool2d(im[None], 8)[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()
            out.append(HEAD.pack(MAGIC, im.shape[1], im.shape[2], len(payload)) + payload)
        return out

    def _decode_padded(self, stream):
        magic, h, w, n = HEAD.unpack_from(stream) if len(stream) >= HEAD.size else (b"", 0, 0, 0)
        if magic != MAGIC:
            if self.flavour == "segfault":
                ctypes.string_at(0)  # a native decoder dereferencing its corrupted header
            if self.flavour == "abort":
                os.abort()
            raise ValueError("not a toy stream")
        if self.flavour == "size":
            return torch.zeros(3, 1, 1).expand(3, h, w)  # trusts the header
        if h < 8 or w < 8 or h % 8 or w % 8 or h * w > self.max_pixels:
            raise ValueError(f"declared size {h}x{w}")
        body = b""
        while len(body) < n:  # the hang flavour waits for bytes a truncated stream never has
            body += stream[HEAD.size + len(body) : HEAD.size + n]
            if self.flavour != "hang" and len(body) < n:
                raise ValueError("truncated")
        values = torch.frombuffer(bytearray(body), dtype=torch.uint8)
        if values.numel() != 3 * (h // 8) * (w // 8):
            raise ValueError(f"{values.numel()} payload bytes for {h}x{w}")
        small = values.float().reshape(1, 3, h // 8, w // 8) / 255
        return F.interpolate(small, scale_factor=8, mode="nearest")[0]


class PlainCodec(ToyCodec):
    """A codec with a round trip and no stream API."""

    _encode_padded = Codec._encode_padded
    _decode_padded = Codec._decode_padded

    def _roundtrip_padded(self, x):
        return self._forward_padded(x, "ste", None)[0].clamp(0, 1), [3 * x.shape[-2] * x.shape[-1] // 64] * x.shape[0]


def make_codec(*, name, quality, weights, device, flavour="good"):
    cls = PlainCodec if flavour == "plain" else ToyCodec
    return cls(flavour, CodecInfo(name, f"toy-{flavour}", quality, weights, random_init=True), device)
