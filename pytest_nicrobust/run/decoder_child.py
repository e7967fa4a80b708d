"""A codec's encoder and decoder in a child process (:mod:`pytest_nicrobust.child`): loaded once,
handed streams, and what comes back judged against the decoder's contract.

The jobs (:func:`load`, :func:`describe_codec`, :func:`encode`, :func:`decode`) run in the child,
on the CPU, one torch thread; :class:`Decoder` is the parent's side. A decode that hangs or crashes
costs a runner of the child, never the worker (see the child's contract).
"""

from __future__ import annotations

import hashlib

from .. import CodecError
from ..child import Child, Reply
from ..codecs.base import DECODED_RANGE
from .mutations import Outcome

LOAD_TIMEOUT_S = 900.0  # building a codec in the child (a JPEG AI tree takes minutes)
ENCODE_TIMEOUT_S = 300.0


# -- in the child ---------------------------------------------------------------------------------


def load(args: dict, payload: bytes):
    """The codec of ``args`` (a suite's codec entry, or a classical codec's name) on the CPU."""
    import torch

    torch.set_num_threads(1)
    if args.get("classical"):
        from PIL import Image

        from ..codecs.builtin.classical import ClassicalCodec

        Image.init()  # every format's plugin imported once, here, not again in each fresh runner
        return ClassicalCodec(args["classical"])
    from ..codecs.loading import load_entry
    from ..config.cases import CodecEntry

    return load_entry(CodecEntry(**args["entry"]), "cpu", tuple(args.get("search", ())))


def describe_codec(state: dict, args: dict, payload: bytes) -> dict:
    from .measure import codec_record

    codec = state[args["key"]]
    return {"stream_api": codec.has_stream_api(), "multiple": codec.multiple, "class": type(codec).__qualname__,
            "record": codec_record(codec)}  # fmt: skip


def encode(state: dict, args: dict, payload: bytes) -> tuple[dict, bytes]:
    """Images (H, W, 3 uint8, back to back; ``args["shapes"]``) -> one stream each, padded to the
    codec's multiple and encoded alone."""
    import numpy as np
    import torch

    from ..codecs.base import check_streams, pad_to_multiple

    codec, streams, padded, at = state[args["key"]], [], [], 0
    for h, w in args["shapes"]:
        pixels = np.frombuffer(payload, np.uint8, h * w * 3, at).reshape(h, w, 3)
        at += h * w * 3
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
        x = pad_to_multiple(x, codec.multiple)
        with torch.no_grad():
            streams += check_streams(codec._encode_padded(x), 1, codec.label)
        padded.append(list(x.shape[-2:]))
    return {"lengths": [len(s) for s in streams], "padded": padded}, b"".join(streams)


def decode(state: dict, args: dict, payload: bytes) -> tuple[dict, bytes]:
    """One stream -> what the decoder returned, described (and its pixels when ``args["pixels"]``)."""
    import torch

    codec = state[args["key"]]
    codec.max_pixels = args["max_pixels"]
    with torch.no_grad():
        x = codec._decode_padded(payload)
    return describe(x, args["max_pixels"], bool(args.get("pixels")))


def describe(x, max_pixels: int, pixels: bool = False) -> tuple[dict, bytes]:
    """Shape, finiteness, range and SHA-256 of a decoded image (only the shape of one too large to read)."""
    import torch

    if not isinstance(x, torch.Tensor):
        return {"type": type(x).__name__}, b""
    shape = list(x.shape)
    if x.ndim != 3 or shape[0] != 3 or min(shape) < 1 or shape[1] * shape[2] > max_pixels:
        return {"type": "tensor", "shape": shape}, b""
    a = x.detach().to("cpu", torch.float32).contiguous()
    finite = torch.isfinite(a)
    values = a[finite]
    data = a.numpy().tobytes()
    low, high = (float(values.min()), float(values.max())) if values.numel() else (None, None)
    doc = {"type": "tensor", "shape": shape, "finite": bool(finite.all()), "min": low, "max": high,
           "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip
    return doc, data if pixels else b""


# -- in the parent --------------------------------------------------------------------------------


def judge(reply: Reply, max_pixels: int, expect: tuple | None = None) -> Outcome:
    """The :class:`~.mutations.Outcome` of one decode; ``expect``: the padded (H, W) of a real stream,
    whose image must decode (at least that large)."""
    if reply.status in ("hang", "crash"):
        return Outcome(reply.status, reply.error)
    if reply.status == "error":
        if expect is not None:
            return Outcome("bad", f"its own stream does not decode: {reply.error}")
        return Outcome("error", reply.error, reply.error.partition(":")[0])
    v = reply.value
    shape = v.get("shape")
    digest = v.get("sha256") or str(shape or v.get("type"))  # what "the same output" means for a bad one
    if shape is None:
        return Outcome("bad", f"_decode_padded returned {v.get('type')}, not an image tensor", digest)
    if len(shape) != 3 or shape[0] != 3 or min(shape) < 1:
        return Outcome("bad", f"_decode_padded returned a tensor of shape {tuple(shape)}, not (3, H, W)", digest)
    h, w = shape[1:]
    if h * w > max_pixels:
        return Outcome(
            "bad", f"_decode_padded returned an image of {h}x{w}, more than max_pixels ({max_pixels})", digest
        )
    if expect is not None and (h < expect[0] or w < expect[1]):
        return Outcome(
            "bad", f"its own stream decodes to {h}x{w}, smaller than the {expect[0]}x{expect[1]} image", digest
        )
    if not v["finite"]:
        return Outcome("bad", f"_decode_padded returned a {h}x{w} image holding NaN or infinite values", digest)
    if v["min"] < DECODED_RANGE[0] or v["max"] > DECODED_RANGE[1]:
        return Outcome("bad", f"_decode_padded returned values in [{v['min']:.4g}, {v['max']:.4g}], not [0, 1]", digest)
    return Outcome("image", f"a {h}x{w} image", digest)


class Decoder:
    """One codec of a bitstream test in the worker's child: prepared once, then encode and decode calls."""

    def __init__(self, child: Child, key: str, spec: dict, time_limit: float, max_pixels: int = 1 << 26):
        self.child, self.key, self.spec = child, key, spec
        self.time_limit, self.max_pixels = time_limit, max_pixels

    def prepare(self) -> dict:
        """Load the codec in the child; its stream API and record. A CodecError says what went wrong."""
        reply = self.child.prepare(self.key, f"{__name__}:load", self.spec, timeout=LOAD_TIMEOUT_S)
        if not reply.ok:
            raise CodecError(f"loading the codec in the child process: {reply.status}: {reply.error}")
        reply = self.child.call(f"{__name__}:describe_codec", {"key": self.key}, needs=self.key, timeout=60)
        if not reply.ok:
            raise CodecError(f"describing the codec in the child process: {reply.status}: {reply.error}")
        return reply.value

    def encode(self, images: list) -> tuple[list[bytes], list[tuple]]:
        """(one stream per image, the padded (H, W) of each), encoded in the child."""
        shapes = [list(im.shape[:2]) for im in images]
        payload = b"".join(im.tobytes() for im in images)
        reply = self.child.call(
            f"{__name__}:encode", {"key": self.key, "shapes": shapes}, payload, ENCODE_TIMEOUT_S, needs=self.key
        )
        if not reply.ok:
            raise CodecError(f"encoding in the child process: {reply.status}: {reply.error}")
        streams, at = [], 0
        for n in reply.value["lengths"]:
            streams.append(reply.payload[at : at + n])
            at += n
        return streams, [tuple(p) for p in reply.value["padded"]]

    def reply(self, stream: bytes, fresh: bool = False, pixels: bool = False) -> Reply:
        args = {"key": self.key, "max_pixels": self.max_pixels, "pixels": pixels}
        return self.child.call(f"{__name__}:decode", args, stream, self.time_limit, needs=self.key, fresh=fresh)

    def decode(self, stream: bytes, fresh: bool = False, expect: tuple | None = None) -> Outcome:
        return judge(self.reply(stream, fresh), self.max_pixels, expect)

    def release(self) -> None:
        self.child.release(self.key)
