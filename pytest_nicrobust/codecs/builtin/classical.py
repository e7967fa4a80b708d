"""Classical codecs through Pillow (JPEG, WebP, JPEG 2000): non-differentiable transfer targets.

Each image is coded at the quality whose clean bitrate best matches a target bpp (the
bitrate the neural source codec spent on the clean image), found by bisection; x' is
then coded at that same quality. Importing this module imports no torch.
"""

from __future__ import annotations

import io

import numpy as np


def _save_kwargs(fmt: str, q: float) -> tuple[str, dict]:
    if fmt == "jpeg":
        return "JPEG", {"quality": int(q)}
    if fmt == "webp":
        return "WEBP", {"quality": int(q), "method": 4}
    if fmt == "jpeg2000":  # q = compression ratio (24 bpp / q); larger ratio = fewer bits
        return "JPEG2000", {"quality_mode": "rates", "quality_layers": [float(q)], "irreversible": True}
    raise ValueError(f"unknown classical codec {fmt!r}; choose from jpeg, webp, jpeg2000")


def encode_decode(pixels: np.ndarray, fmt: str, q: float) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 -> (decoded uint8, bytes)."""
    from PIL import Image

    name, kwargs = _save_kwargs(fmt, q)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=name, **kwargs)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB")).copy(), len(buf.getvalue())


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
    import torch

    from ..base import RoundTrip

    recs, nbytes = [], []
    for im, q in zip(x, qualities):
        dec, n = encode_decode(to_pixels(im), fmt, q)
        recs.append(torch.from_numpy(dec).permute(2, 0, 1))
        nbytes.append(n)
    h, w = x.shape[-2:]
    bpp = torch.tensor([8.0 * n / (h * w) for n in nbytes], dtype=torch.float64)
    return RoundTrip(torch.stack(recs).to(x.device, x.dtype) / 255, nbytes, bpp)
