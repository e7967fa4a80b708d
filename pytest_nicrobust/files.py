"""Files: content hashes and atomic writes, the two things every room does with a file.

Ground floor: standard library only, imported from anywhere in the package.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any


def sha256_of(path: str) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (raises OSError when it cannot be read)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_or_none(path: str) -> str | None:
    """:func:`sha256_of`, or None for a file that is missing or unreadable (provenance, baselines)."""
    try:
        return sha256_of(path)
    except OSError:
        return None


def write_json_atomic(path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` through a temporary file in the same folder, then rename; the mode
    follows the umask (0644 under 022), as for the other files of a run."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nicrobust-", suffix=".json.tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # like any file the user writes (0644 under umask 022), not mkstemp's 0600
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, default=float)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
