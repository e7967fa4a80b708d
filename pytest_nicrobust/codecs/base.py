"""The codec interface every attack and metric works against.

A codec maps an image batch (N,3,H,W) in [0,1] to a differentiable reconstruction
plus estimated bits (``forward``), and to real bytes and a decoded image
(``roundtrip``). Images are padded (replicate) to the codec's multiple and cropped
back, never resized.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class ForwardOutput:
    """Differentiable pass: reconstruction (unpadded, not rounded) and estimated bpp per image."""

    x_hat: torch.Tensor
    bpp: torch.Tensor


@dataclass
class RoundTrip:
    """Real encode + decode: 8-bit rounded reconstruction, bytes and bpp per image."""

    x_hat: torch.Tensor
    nbytes: list[int]
    bpp: torch.Tensor


@dataclass
class CodecInfo:
    """What a report needs to say about where a codec came from."""

    label: str
    architecture: str
    quality: int | None
    weights: str
    random_init: bool = False
    details: dict = field(default_factory=dict)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def round_to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Quantise to the 256 levels an image file can hold (no gradient)."""
    return torch.round(x.clamp(0, 1) * 255) / 255


class Codec:
    """Base class. Subclasses implement ``_forward_padded`` and ``_roundtrip_padded``."""

    multiple = 64
    differentiable = True

    def __init__(self, info: CodecInfo, device: torch.device | str = "cpu"):
        self.info = info
        self.device = torch.device(device)

    @property
    def label(self) -> str:
        return self.info.label

    def forward(self, x: torch.Tensor, proxy: str = "noise", generator: torch.Generator | None = None) -> ForwardOutput:
        h, w = x.shape[-2:]
        x_hat, bits = self._forward_padded(pad_to_multiple(x, self.multiple), proxy, generator)
        return ForwardOutput(x_hat[..., :h, :w], bits / (h * w))

    @torch.no_grad()
    def roundtrip(self, x: torch.Tensor) -> RoundTrip:
        h, w = x.shape[-2:]
        x_hat, nbytes = self._roundtrip_padded(pad_to_multiple(x, self.multiple))
        x_hat = round_to_8bit(x_hat[..., :h, :w])
        bpp = torch.tensor([8.0 * n / (h * w) for n in nbytes], dtype=torch.float64)
        return RoundTrip(x_hat, list(nbytes), bpp)

    __call__ = forward

    def eot_views(self, generator: torch.Generator | None) -> list[Codec] | None:
        """For codecs with a random transform in front (defenses): the draws an attack averages
        over at one step (expectation over transformation). Plain codecs: None."""
        return None

    def _forward_padded(self, x, proxy, generator):  # pragma: no cover - interface
        raise NotImplementedError

    def _roundtrip_padded(self, x):  # pragma: no cover - interface
        raise NotImplementedError
