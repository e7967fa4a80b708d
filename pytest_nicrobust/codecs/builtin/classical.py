"""Classical codecs through Pillow (JPEG, WebP, JPEG 2000): non-differentiable transfer targets,
and stream codecs for the bitstream tests (their files decoded by Pillow's native decoders).

As transfer targets, each image is coded at the quality whose clean bitrate best matches a target
bpp (the bitrate the neural source codec spent on the clean image), found by bisection; x' is then
coded at that same quality. As stream codecs (:class:`ClassicalCodec`), images are coded at
:data:`STREAM_QUALITY` and each file is decoded by :func:`decode`, which refuses a file declaring
more than ``max_pixels`` before Pillow decodes it.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from ..base import Codec, CodecInfo, RoundTrip


def _save_kwargs(fmt: str, q: float) -> tuple[str, dict]:
    if fmt == "jpeg":
        return "JPEG", {"quality": int(q)}
    if fmt == "webp":
        return "WEBP", {"quality": int(q), "method": 4}
    if fmt == "jpeg2000":  # q = compression ratio (24 bpp / q); larger ratio = fewer bits
        return "JPEG2000", {"quality_mode": "rates", "quality_layers": [float(q)], "irreversible": True}
    raise ValueError(f"unknown classical codec {fmt!r}; choose from jpeg, webp, jpeg2000")


def encode(pixels: np.ndarray, fmt: str, q: float) -> bytes:
    """(H, W, 3) uint8 -> the file's bytes."""
    from PIL import Image

    name, kwargs = _save_kwargs(fmt, q)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=name, **kwargs)
    return buf.getvalue()


def decode(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """A file's bytes -> (H, W, 3) uint8, by Pillow; a file declaring more than ``max_pixels`` is
    refused (ValueError) from its header, before anything is decoded."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if max_pixels is not None and im.size[0] * im.size[1] > max_pixels:
            raise ValueError(f"declared size {im.size[0]}x{im.size[1]}: more than {max_pixels} pixels")
        return np.asarray(im.convert("RGB")).copy()


def encode_decode(pixels: np.ndarray, fmt: str, q: float) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 -> (decoded uint8, bytes)."""
    data = encode(pixels, fmt, q)
    return decode(data), len(data)


def _bpp(pixels, fmt, q):
    return 8.0 * encode_decode(pixels, fmt, q)[1] / (pixels.shape[0] * pixels.shape[1])


def match_quality(pixels: np.ndarray, fmt: str, target_bpp: float, iters: int = 12) -> float:
    """The quality setting whose bpp on ``pixels`` is closest to ``target_bpp`` (bisection)."""
    if fmt == "jpeg2000":  # bits fall as the ratio grows: bisect log-ratio
        lo, hi = np.log(2.0), np.log(2000.0)
        best = None
        for _ in range(iters):
            mid = (lo + hi) / 2
            b = _bpp(pixels, fmt, np.exp(mid))
            if best is None or abs(b - target_bpp) < best[0]:
                best = (abs(b - target_bpp), float(np.exp(mid)))
            lo, hi = (mid, hi) if b > target_bpp else (lo, mid)
        return best[1]
    lo, hi = 1, 95 if fmt == "jpeg" else 100
    best = None
    while lo <= hi:  # bits grow with quality
        mid = (lo + hi) // 2
        b = _bpp(pixels, fmt, mid)
        if best is None or abs(b - target_bpp) < best[0]:
            best = (abs(b - target_bpp), mid)
        lo, hi = (mid + 1, hi) if b < target_bpp else (lo, mid - 1)
    return float(best[1])


def to_pixels(x) -> np.ndarray:
    return (x.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def roundtrip(x, fmt: str, qualities: list[float]):
    """Code each image of the batch x (N,3,H,W) at its own quality setting -> RoundTrip."""
    recs, nbytes = [], []
    for im, q in zip(x, qualities):
        dec, n = encode_decode(to_pixels(im), fmt, q)
        recs.append(torch.from_numpy(dec).permute(2, 0, 1))
        nbytes.append(n)
    h, w = x.shape[-2:]
    bpp = torch.tensor([8.0 * n / (h * w) for n in nbytes], dtype=torch.float64)
    return RoundTrip(torch.stack(recs).to(x.device, x.dtype) / 255, nbytes, bpp)


STREAM_QUALITY = {"jpeg": 75, "webp": 75, "jpeg2000": 40.0}  # what a bitstream test codes its images at


def library_versions() -> dict:
    """Pillow's version and those of the native libraries behind the three formats."""
    import PIL
    from PIL import features

    return {
        "pillow": PIL.__version__,
        **{
            name: features.version(key)
            for name, key in (("libjpeg", "jpg"), ("libwebp", "webp"), ("openjpeg", "jpg_2000"))
        },
    }


class ClassicalCodec(Codec):
    """A classical codec as a stream codec: files from Pillow's encoder at :data:`STREAM_QUALITY`,
    decoded by Pillow (:func:`decode`); not differentiable (no attack runs on it)."""

    multiple = 1
    differentiable = False

    def __init__(self, fmt: str, device="cpu"):
        _save_kwargs(fmt, STREAM_QUALITY.get(fmt, 0))  # an unknown name: one line
        self.fmt = fmt
        details = {"quality": STREAM_QUALITY[fmt], **library_versions()}
        super().__init__(CodecInfo(fmt, f"pillow:{fmt}", None, None, details=details), device)

    def identity(self) -> dict:
        return {**super().identity(), **self.info.details}

    def _forward_padded(self, x, proxy, generator):
        raise NotImplementedError(f"{self.label} is not differentiable")

    def _encode_padded(self, x):
        return [encode(to_pixels(im), self.fmt, STREAM_QUALITY[self.fmt]) for im in x]

    def _decode_padded(self, stream):
        pixels = decode(stream, self.max_pixels)
        return torch.from_numpy(pixels).permute(2, 0, 1).to(self.device, torch.float32) / 255
