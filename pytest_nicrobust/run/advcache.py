"""Content-addressed cache of adversarial images, shared by xdist workers.

Key: hash of the codec's identity (:meth:`Codec.identity`: class, its source, weights), the
device, the attack (name, preset, objective, proxy, parameters), the seed, the defense attacked
through (adaptive), the batch the image was attacked in (a batch shares one random stream) and
the image's name and pixels. Values: lossless 8-bit PNG files written atomically (tmp +
os.replace), so a transfer or worst-case test fetches x' instead of repeating the attack.

An entry is not trusted blindly: one that cannot be read, that breaks the attack's budget
against the clean image (a file replaced by another image), or that is the clean image itself (an
x' that moved no pixel is never cached) is a miss, with a warning, and the attack runs again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tempfile
import threading
import time
import warnings

import numpy as np

from .. import NicrobustWarning

try:
    import fcntl
except ImportError:  # Windows: no lock, at worst two workers make the same x'
    fcntl = None


def cache_key(codec, attack_entry, seed: int, image, batch: list[str], defense: str | None = None) -> str:
    doc = {
        "codec": codec.identity_digest(),
        "device": codec.device.type,  # x' made on a GPU differs slightly from the CPU one
        "attack": [
            attack_entry.name,
            attack_entry.preset,
            attack_entry.objective,
            attack_entry.proxy,
            sorted(attack_entry.params.items()),
        ],
        "seed": seed,
        "defense": defense,
        "batch": batch,
        "image": [
            image.name,
            hashlib.sha256(np.ascontiguousarray(image.pixels).tobytes()).hexdigest(),
            list(image.pixels.shape),
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def private_folder(path: str) -> str | None:
    """``path`` created with mode 0700; None (with a warning) if it exists and others could write to it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        warnings.warn(
            NicrobustWarning(
                f"adversarial-image cache {path} is not private to this user "
                "(owner or permissions); caching is off for this run"
            ),
            stacklevel=2,
        )
        return None
    return path


class Making:
    """What :meth:`AdvCache.making` found: ``waited`` seconds blocked on another worker's lock."""

    waited = 0.0


class AdvCache:
    def __init__(self, root: str | None):
        self.root = root
        self.waits: dict = {}  # thread -> who holds the entry it is blocked on (see :meth:`waiting`)
        if root:
            os.makedirs(root, exist_ok=True)

    def waiting(self) -> list[str]:
        """Who holds the entries this process's threads are blocked on now: ``gw1 (test id)``, what a
        time limit that ends the wait names."""
        return list(self.waits.values())

    def _path(self, key):
        return os.path.join(self.root, key[:2], key + ".png")

    def get(self, key, check=None, shape=None) -> np.ndarray | None:
        """(H, W, 3) uint8, or None when missing, unreadable or failing ``check`` (no cache: None).

        ``check(pixels)`` returns None for a valid entry, else why it is not; ``shape``, when
        given, is the (H, W) the entry must have. An entry that is not 8-bit RGB, has another
        size, or makes ``check`` itself fail (a size mismatch in the budget check) is a warned miss.
        """
        from PIL import Image

        if not self.root or not os.path.exists(self._path(key)):
            return None
        try:
            with Image.open(self._path(key)) as im:
                if im.mode != "RGB":
                    return self._reject(key, f"is a {im.mode} image, not 8-bit RGB")
                pixels = np.asarray(im).copy()
        except Exception as exc:  # truncated or foreign file
            return self._reject(key, f"cannot be read ({type(exc).__name__}: {exc})")
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            return self._reject(key, f"holds {pixels.dtype} pixels of shape {pixels.shape}, not (H, W, 3) uint8")
        if shape is not None and tuple(pixels.shape[:2]) != tuple(shape):
            return self._reject(key, f"is {pixels.shape[1]}x{pixels.shape[0]}, not the image's {shape[1]}x{shape[0]}")
        try:
            problem = check(pixels) if check else None
        except Exception as exc:  # e.g. a size that does not match the clean image
            problem = f"does not fit the clean image ({type(exc).__name__}: {str(exc)[:200]})"
        return self._reject(key, problem) if problem else pixels

    def _reject(self, key, why):
        warnings.warn(NicrobustWarning(f"cached adversarial image {self._path(key)} {why}; made again"), stacklevel=2)
        return None

    @contextlib.contextmanager
    def making(self, key, holder: str = ""):
        """Held while one process makes the entry ``key``: another xdist worker that needs the same
        x' waits for it and then reads it, instead of attacking twice (POSIX file lock). The lock
        file names its ``holder`` (``gw1 (test id)``), for a wait that ends in a time limit to say
        whom it waited for.

        Yields a :class:`Making`: ``waited`` is the seconds this process was blocked while another
        one held the lock (0.0 when it got the lock at once), so a wait is recorded as a wait.
        """
        state = Making()
        if not self.root or fcntl is None:
            yield state
            return
        path = self._path(key) + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a+") as f:  # not "w": the holder's name stays readable
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another worker is making this x'
                f.seek(0)
                self.waits[threading.get_ident()] = f.read(300).strip() or "another worker"
                start = time.perf_counter()
                try:
                    fcntl.flock(f, fcntl.LOCK_EX)  # a time limit's signal interrupts the wait
                finally:
                    self.waits.pop(threading.get_ident(), None)
                state.waited = max(time.perf_counter() - start, 1e-9)
            f.seek(0)
            f.truncate()
            f.write(holder)
            f.flush()
            try:
                yield state
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def put(self, key, pixels: np.ndarray, trace: list[float] | None = None) -> None:
        """Store x' (and, for an attack with steps, its objective per step: the convergence record
        of a test that later reads x' from here)."""
        from PIL import Image

        if not self.root:
            return
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if trace:
            _atomic_write(path[: -len(".png")] + ".trace.json", json.dumps(trace).encode())
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        _atomic_write(path, buf.getvalue())

    def trace(self, key) -> list[float] | None:
        """The objective per step stored with an entry, or None (no steps, an older entry, unreadable)."""
        if not self.root:
            return None
        try:
            with open(self._path(key)[: -len(".png")] + ".trace.json") as f:
                values = json.load(f)
        except (OSError, ValueError):
            return None
        ok = isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        return [float(v) for v in values] if ok else None


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
