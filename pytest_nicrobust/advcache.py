"""Content-addressed cache of adversarial images, shared by xdist workers.

Key: hash of the codec's identity and weights, the attack (name, preset, objective,
proxy, overrides), the seed, the defense attacked through (adaptive), and the image's
name and pixels. Values: lossless 8-bit PNG files written atomically (tmp + os.replace),
so a transfer test fetches x' instead of repeating the attack, on any worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np


def weights_identity(info) -> dict:
    """What pins a codec's weights: manifest SHA-256, or the checkpoint file's size and mtime."""
    ident = {"architecture": info.architecture, "quality": info.quality, "weights": info.weights}
    if "sha256" in info.details:
        ident["sha256"] = info.details["sha256"]
    elif "file" in info.details and os.path.exists(info.details["file"]):
        st = os.stat(info.details["file"])
        ident["file"] = [os.path.realpath(info.details["file"]), st.st_size, st.st_mtime_ns]
    return ident


def cache_key(codec_info, attack_entry, seed: int, image, defense: str | None = None, device: str = "cpu") -> str:
    doc = {
        "codec": weights_identity(codec_info),
        "device": device,  # x' made on a GPU differs slightly from the CPU one
        "attack": [attack_entry.name, attack_entry.preset, attack_entry.objective, attack_entry.proxy,
                   sorted(attack_entry.params.items())],
        "seed": seed,
        "defense": defense,
        "image": [image.name, hashlib.sha256(np.ascontiguousarray(image.pixels).tobytes()).hexdigest(),
                  list(image.pixels.shape)],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


class AdvCache:
    def __init__(self, root: str | None):
        self.root = root
        if root:
            os.makedirs(root, exist_ok=True)

    def _path(self, key):
        return os.path.join(self.root, key[:2], key + ".png")

    def get(self, key) -> np.ndarray | None:
        """(H, W, 3) uint8, or None when missing (or no cache configured)."""
        from PIL import Image

        if not self.root or not os.path.exists(self._path(key)):
            return None
        with Image.open(self._path(key)) as im:
            return np.asarray(im.convert("RGB")).copy()

    def put(self, key, pixels: np.ndarray) -> None:
        from PIL import Image

        if not self.root:
            return
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(pixels).save(f, format="PNG")
        os.replace(tmp, path)
