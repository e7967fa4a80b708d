"""Trained JPEG AI weights a user can trust: the official files' checksums, and Git LFS pointers told apart.

The IS line of the reference software keeps its trained weights in Git LFS: a clone without
``git lfs pull`` (or ``git lfs fetch`` and ``git lfs checkout``) holds ~130-byte pointer files where
the ``.pth`` files should be. ``official_weights.json`` (package data) lists, per file under
``models/``, the SHA-256 and size of those public pointers (the IS line) and the MD5 of the DVC
pointers of a DIS-line copy, facts read from the public mirrors (docs/jpegai.md names them).

:func:`lfs_pointer` says whether a file is such a pointer; :func:`weights_check` compares the files
a codec loads with the manifest (no torch: the collection half uses it too).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

from ....files import sha256_of

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
POINTER_MAX_BYTES = 1024  # a pointer file is ~130 bytes; a weights file is megabytes


@functools.cache
def manifest() -> dict:
    """{path under models/: {"sha256", "size", "commit", "dis_md5"}} of the official weights."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_weights.json")) as f:
        return json.load(f)["files"]


def lfs_pointer(path: str) -> bool:
    """Whether ``path`` is a Git LFS pointer file (the weights' object not fetched)."""
    try:
        if os.path.getsize(path) > POINTER_MAX_BYTES:
            return False
        with open(path, "rb") as f:
            return f.read(len(LFS_POINTER)) == LFS_POINTER
    except OSError:
        return False


def pointer_problem(models: str, files: list[str]) -> str | None:
    """One phrase naming the first of ``files`` (relative to ``models``) that is an LFS pointer; None if none is."""
    for relative in files:
        path = os.path.join(models, relative)
        if lfs_pointer(path):
            return (
                f"{path} is a Git LFS pointer ({os.path.getsize(path)} bytes), not the weights: fetch the LFS objects "
                f"(git lfs pull, or git lfs fetch then git lfs checkout, in the tree)"
            )
    return None


def _md5(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)  # the DVC pointers' checksum, not a security check
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_check(models: str, files: list[str], sha256: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """(``"official"`` or ``"not official"``, the files of ``files`` that are not the official ones, each
    with why): a file is official when its SHA-256 is the IS line's, or its MD5 the DIS line's, for its
    path. ``sha256``: digests already computed, by relative path."""
    known = manifest()
    differ = []
    for relative in files:
        path = os.path.join(models, relative)
        entry = known.get(relative.replace(os.sep, "/"))
        if entry is None:
            differ.append(f"{relative} (not an official file name)")
            continue
        digest = (sha256 or {}).get(relative) or sha256_of(path)
        if digest == entry["sha256"]:
            continue
        if entry.get("dis_md5") and os.path.getsize(path) == entry["size"] and _md5(path) == entry["dis_md5"]:
            continue
        differ.append(f"{relative} (sha256 {digest[:12]}…, official {entry['sha256'][:12]}…)")
    return ("not official" if differ else "official"), differ
