"""TinyDCT as a pytest-nicrobust codec: the whole adapter a codec team writes.

In a suite::

    [[codecs]]
    model = "tinydct.nicrobust:make_codec"   # import path (or the entry point "tinydct")
    name = "tinydct-v1"
    weights = "weights/v1.pt"                # relative to the suite file
    qualities = [2, 4, "s0.6"]               # whatever the codec accepts
    step = 1.0                               # any other key reaches the factory
"""

from __future__ import annotations

import struct

import torch

from pytest_nicrobust import CodecError
from pytest_nicrobust.codecs.base import Codec, CodecInfo, sha256_of

from .codec import BLOCK, TinyDCT

SIZE = struct.Struct(">HH")  # a stream's size in 8x8 blocks, before its rANS string


def step_for(quality) -> float:
    """Quality 1..8 (coarse to fine), or "s<multiplier>" for the quantiser step itself."""
    if isinstance(quality, str) and quality.startswith("s"):
        return float(quality[1:])
    if isinstance(quality, int) and 1 <= quality <= 8:
        return 2.0 ** ((4 - quality) / 2)
    raise CodecError(f"tinydct: quality {quality!r} is not 1..8 or 's<step>'")


class TinyDCTCodec(Codec):
    multiple = BLOCK  # the base class pads to 8 and crops back

    def __init__(self, net: TinyDCT, info: CodecInfo, device):
        super().__init__(info, device)
        self.net = net.to(self.device)

    def _forward_padded(self, x, proxy, generator):
        y = self.net.analysis(x)
        if proxy == "noise":  # additive uniform noise, from the attack's generator
            y_hat = y + torch.rand(y.shape, generator=generator, device=y.device) - 0.5
        else:  # "ste": round forward, identity backward
            y_hat = y + (torch.round(y) - y).detach()
        bits = -torch.log2(self.net.likelihood(y_hat)).flatten(1).sum(dim=1)
        return self.net.synthesis(y_hat), bits  # total bits per image, not bpp

    def _encode_padded(self, x):
        """One self-contained stream per image: its size in blocks (two uint16), then its string."""
        hb, wb = x.shape[-2] // BLOCK, x.shape[-1] // BLOCK
        return [SIZE.pack(hb, wb) + s for s in self.net.encode(x)]

    def _decode_padded(self, stream):
        """One stream -> (3, H, W); a size the header cannot hold, or beyond max_pixels, is refused."""
        if len(stream) < SIZE.size:
            raise CodecError(f"{self.label}: {len(stream)} bytes, shorter than the size header")
        hb, wb = SIZE.unpack_from(stream)
        if hb < 1 or wb < 1 or hb * wb * BLOCK * BLOCK > self.max_pixels:
            raise CodecError(f"{self.label}: declared size {hb}x{wb} blocks: not within max_pixels")
        return self.net.decode([stream[SIZE.size :]], (hb, wb))[0]  # bytes per image: the stream's length


def make_codec(*, name, quality, weights, device, step=1.0):
    """The factory pytest-nicrobust calls: the suite's label, quality, weights path (resolved
    relative to the suite file, or None) and device, plus any extra key of the table (``step``)."""
    if weights is None:
        raise CodecError(f'{name}: tinydct needs weights = "..." (a file made by make_weights.py)')
    state = torch.load(weights, map_location="cpu", weights_only=True)  # untrusted file: tensors only
    if not isinstance(state, dict) or tuple(getattr(state.get("scales"), "shape", ())) != (3, 64):
        raise CodecError(f"{name}: {weights} holds no (3, 64) 'scales' tensor")
    info = CodecInfo(
        label=name,
        architecture="tinydct",
        quality=quality,
        weights=weights,
        details={"file": weights, "sha256": sha256_of(weights), "step": step},
    )
    return TinyDCTCodec(TinyDCT(state["scales"], step_for(quality) * float(step)), info, device)
