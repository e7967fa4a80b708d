"""The codec interface every attack, defense and metric works against: the contract.

A codec maps an image batch to a differentiable reconstruction plus estimated bits
(:meth:`Codec.forward`, what attacks differentiate) and to real bytes and the image decoded from
them (:meth:`Codec.roundtrip`, what is measured and gated). Subclass :class:`Codec` and implement
two methods; the base class pads, crops, converts units and guards against non-finite values.

Contract of a subclass
----------------------
``__init__(info, device)``
    :class:`CodecInfo` says where the codec came from (label, quality, weights file and its
    SHA-256 in ``details``); ``device`` is where inputs arrive and outputs must be.
``multiple`` (class attribute, default 64)
    Both methods receive images padded (replicate) to a multiple of this in H and W; the base
    class crops the outputs back, so odd sizes work and images are never resized.
``_forward_padded(x, proxy, generator) -> (x_hat, bits)``
    ``x``: (N, 3, H, W) float32 in [0, 1], H and W multiples of ``multiple``. Returns ``x_hat``
    (N, 3, H, W), the reconstruction, differentiable with respect to ``x`` (values may leave
    [0, 1] slightly; do not clamp away the gradient), and ``bits`` (N,): the estimated size of
    each image in **bits** (not bpp): Σ −log2 p over every likelihood tensor (y, z, ...), also
    differentiable. Quantisation must let gradients through according to ``proxy``:

    * ``"noise"``: replace rounding by additive uniform noise U(−0.5, 0.5) drawn from
      ``generator`` (a seeded ``torch.Generator`` on ``device``; same state, same noise);
    * ``"ste"``: round in the forward pass, identity gradient (straight-through).

    Never switch the model to ``.train()`` for this; only the quantiser changes.
``_encode_padded(x) -> list[bytes]`` and ``_decode_padded(stream) -> x_hat`` (the stream API)
    Real coding, one image at a time on the way back: ``_encode_padded`` turns the padded batch
    ``x`` into one self-contained stream per image (it carries the image's size and every side
    information its decoder needs: a file another process could decode), ``_decode_padded``
    turns one stream into the (3, H, W) image in [0, 1] on ``device``. The base class's round
    trip is made of them (bytes = the stream's length, less ``_container_bytes``), and the
    bitstream tests (docs/bitstreams.md) decode mutated streams with ``_decode_padded`` in a
    child process. Deterministic: the same image gives the same stream, the same stream the same
    image. A decoder should refuse (raise) a stream that declares an image of more than
    ``max_pixels`` pixels rather than allocate it.
``_roundtrip_padded(x) -> (x_hat, nbytes)`` (instead of the stream API, or beside it)
    Real encode to bytes and decode from those bytes. ``x_hat`` (N, 3, H, W) in [0, 1] (the
    base class rounds it to 8 bits); ``nbytes``: N integers, the **bytes** of every stream of
    each image (y, z, side information). Deterministic: the same input gives the same bytes
    and the same decoded image, call after call. A codec with only this has no stream API: its
    bitstream test reports "no stream API".
``max_pixels`` (class attribute, default :data:`MAX_PIXELS`)
    The largest image (H x W) ``_decode_padded`` may return; the bitstream test sets it to its
    own bound. ``_container_bytes(stream) -> int`` (default 0): bytes of a stream that are a
    container this plugin puts around a coder's own strings (:mod:`.container`), left out of bpp.
``identity() -> dict`` (optional override)
    What pins this codec's numbers: the adversarial-image cache keys on it, so a changed
    model must change it. The default covers the class, the source file that defines it and
    the weights (``info.details["sha256"]``, else the file named by ``info.details["file"]``).
    Override it when the codec depends on more (a config file, a native library version).

The base class turns bits into bpp over the *unpadded* pixels, rounds decoded images to 8 bits,
and raises :class:`NonFiniteError` (a ``CodecError`` naming the images) when an input or output
is NaN or infinite, instead of passing it on to an entropy coder that may never return.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import CodecError
from ..files import sha256_of


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
    quality: int | str | None
    weights: str | None
    random_init: bool = False
    details: dict = field(default_factory=dict)  # file, sha256, N, M, lambda, ...


class NonFiniteError(CodecError):
    """NaN or infinity in a codec's input or output; ``images`` are the indices in the batch."""

    def __init__(self, message: str, images: list[int]):
        super().__init__(message)
        self.images = images


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def round_to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Quantise to the 256 levels an image file can hold (no gradient)."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def non_finite_images(t: torch.Tensor) -> list[int]:
    """Indices along dim 0 of the entries holding NaN or infinity."""
    bad = ~torch.isfinite(t.detach().reshape(t.shape[0], -1)).all(dim=1)
    return bad.nonzero().flatten().tolist()


def check_finite(t: torch.Tensor, what: str, label: str) -> None:
    bad = non_finite_images(t)
    if bad:
        raise NonFiniteError(f"codec {label}: {what} is NaN or infinite for image(s) {bad} of the batch", bad)


DECODED_RANGE = (-0.5, 1.5)  # a decoded image beyond this is in the wrong units (0-255?), not a clamp away


def _whole(b) -> bool:
    """An int >= 0 (Python, NumPy or a one-element integer tensor): a byte count."""
    if isinstance(b, bool):
        return False
    try:
        value = float(b)
    except (TypeError, ValueError, RuntimeError):
        return False
    return value >= 0 and value.is_integer()


def check_decoded(x: torch.Tensor, x_hat, nbytes, codec) -> None:
    """What ``_roundtrip_padded`` returned keeps the contract: one byte count per image, an image
    per image at least the input's size, values in [0, 1] (a little beyond is clamped with a
    warning, once per codec; beyond :data:`DECODED_RANGE`, a CodecError naming the images)."""
    import warnings

    from .. import NicrobustWarning

    n, label = x.shape[0], codec.label
    if (
        not isinstance(x_hat, torch.Tensor)
        or x_hat.ndim != 4
        or x_hat.shape[0] != n
        or x_hat.shape[1] != 3
        or x_hat.shape[2] < x.shape[2]
        or x_hat.shape[3] < x.shape[3]
    ):
        shape = tuple(x_hat.shape) if isinstance(x_hat, torch.Tensor) else type(x_hat).__name__
        raise CodecError(
            f"codec {label}: the decoded batch is {shape}, want ({n}, 3, {x.shape[2]}, {x.shape[3]}) or larger"
        )
    try:
        counts = [b for b in nbytes]
    except TypeError:
        counts = None
    if counts is None or len(counts) != n or not all(_whole(b) for b in counts):
        raise CodecError(
            f"codec {label}: the round trip gave byte counts {str(nbytes)[:80]} for a batch of {n} "
            f"image(s); want one count (an int >= 0) per image"
        )
    lo = x_hat.detach().reshape(n, -1).amin(dim=1)
    hi = x_hat.detach().reshape(n, -1).amax(dim=1)
    wrong = ((lo < DECODED_RANGE[0]) | (hi > DECODED_RANGE[1])).nonzero().flatten().tolist()
    if wrong:
        raise NonFiniteError(
            f"codec {label}: the decoded image spans [{float(lo.min()):.4g}, {float(hi.max()):.4g}] "
            f"for image(s) {wrong} of the batch, not [0, 1] (wrong units?)",
            wrong,
        )
    if (float(lo.min()) < -0.5 / 255 or float(hi.max()) > 1 + 0.5 / 255) and not getattr(codec, "_warned_range", False):
        codec._warned_range = True
        warnings.warn(
            NicrobustWarning(
                f"codec {label}: the decoded image reaches [{float(lo.min()):.4g}, "
                f"{float(hi.max()):.4g}]; clamped to [0, 1] (the contract asks for [0, 1])"
            ),
            stacklevel=2,
        )


MAX_PIXELS = 1 << 26  # what a decoder may return by default (8192 x 8192): see ``Codec.max_pixels``


def check_streams(streams, n: int, label: str) -> list[bytes]:
    """What ``_encode_padded`` returned keeps the contract: one ``bytes`` stream per image."""
    if not isinstance(streams, (list, tuple)) or len(streams) != n or not all(isinstance(s, bytes) for s in streams):
        got = f"{len(streams)} item(s)" if isinstance(streams, (list, tuple)) else type(streams).__name__
        raise CodecError(
            f"codec {label}: _encode_padded gave {got} for a batch of {n}; want one bytes stream per image"
        )
    return list(streams)


def check_image(x_hat, label: str, what: str = "_decode_padded") -> torch.Tensor:
    """What ``_decode_padded`` returned is a (3, H, W) tensor (a CodecError naming the shape otherwise)."""
    if not isinstance(x_hat, torch.Tensor) or x_hat.ndim != 3 or x_hat.shape[0] != 3 or min(x_hat.shape) < 1:
        shape = tuple(x_hat.shape) if isinstance(x_hat, torch.Tensor) else type(x_hat).__name__
        raise CodecError(f"codec {label}: {what} gave {shape}, want a (3, H, W) image")
    return x_hat


class Codec:
    """Base class. Subclasses implement ``_forward_padded`` and the stream API (or ``_roundtrip_padded``)."""

    multiple = 64
    differentiable = True
    max_pixels = MAX_PIXELS

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
        check_finite(x, "the input", self.label)
        padded = pad_to_multiple(x, self.multiple)
        x_hat, nbytes = self._roundtrip_padded(padded)
        check_decoded(padded, x_hat, nbytes, self)
        check_finite(x_hat, "the decoded image", self.label)
        x_hat = round_to_8bit(x_hat[..., :h, :w])
        bpp = torch.tensor([8.0 * n / (h * w) for n in nbytes], dtype=torch.float64)
        return RoundTrip(x_hat, list(nbytes), bpp)

    __call__ = forward

    def identity(self) -> dict:
        """What pins this codec's numbers (class, its source, weights); see the module docstring."""
        cls = type(self)
        ident = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "label": self.info.label,
            "quality": self.info.quality,
            "weights": self.info.weights,
        }
        try:
            source = inspect.getsourcefile(cls)
        except TypeError:  # defined in a REPL or a built-in
            source = None
        if source and os.path.exists(source):
            ident["code_sha256"] = sha256_of(source)
        details = self.info.details
        if "sha256" in details:
            ident["weights_sha256"] = details["sha256"]
        elif details.get("file") and os.path.isfile(details["file"]):
            ident["weights_sha256"] = sha256_of(details["file"])
        return ident

    def identity_digest(self) -> str:
        """SHA-256 of :meth:`identity`, computed once per codec object."""
        if not hasattr(self, "_identity_digest"):
            text = json.dumps(self.identity(), sort_keys=True, default=str)
            self._identity_digest = hashlib.sha256(text.encode()).hexdigest()
        return self._identity_digest

    def eot_views(self, generator: torch.Generator | None) -> list[Codec] | None:
        """For codecs with a random transform in front (defenses): the draws an attack averages
        over at one step (expectation over transformation). Plain codecs: None."""
        return None

    def has_stream_api(self) -> bool:
        """Whether this codec implements ``_encode_padded`` and ``_decode_padded`` (bitstream tests need both)."""
        cls = type(self)
        return cls._encode_padded is not Codec._encode_padded and cls._decode_padded is not Codec._decode_padded

    def _forward_padded(self, x, proxy, generator):  # pragma: no cover - interface
        raise NotImplementedError

    def _encode_padded(self, x: torch.Tensor) -> list[bytes]:  # pragma: no cover - interface
        raise NotImplementedError

    def _decode_padded(self, stream: bytes) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def _container_bytes(self, stream: bytes) -> int:
        return 0

    def _roundtrip_padded(self, x):
        """The stream API's round trip: encode the batch, decode each stream, count each stream's bytes."""
        if not self.has_stream_api():
            raise NotImplementedError(
                f"{type(self).__name__} implements neither _roundtrip_padded nor _encode_padded and _decode_padded"
            )
        streams = check_streams(self._encode_padded(x), x.shape[0], self.label)
        images = [check_image(self._decode_padded(s), self.label) for s in streams]
        if len({tuple(im.shape) for im in images}) > 1:
            raise CodecError(
                f"codec {self.label}: the images of one batch decode to different sizes "
                f"{sorted({tuple(im.shape) for im in images})}"
            )
        return torch.stack(images).to(x.device), [len(s) - self._container_bytes(s) for s in streams]
