"""The small checkpoints trained by this project and shipped as package data.

``manifest.json`` beside them lists architecture, N, M, λ, training record,
SHA-256 and Kodak results for each; ``nicrobust:<arch>@q<quality>`` names one.
"""

from __future__ import annotations

import functools
import json
import os

from ... import CodecError

CHECKPOINT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "checkpoints")
MANIFEST = os.path.join(CHECKPOINT_DIR, "manifest.json")


@functools.cache
def manifest() -> dict:
    try:
        with open(MANIFEST) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"models": []}


def shipped_entry(architecture: str, quality: int) -> dict:
    models = manifest()["models"]
    for entry in models:
        if entry["architecture"] == architecture and entry["quality"] == quality:
            return entry
    have = ", ".join(e["id"] for e in models) or "none"
    raise CodecError(f"no shipped checkpoint for {architecture} q{quality}; shipped: {have}")


def shipped_path(entry: dict) -> str:
    """Path of a shipped checkpoint whose SHA-256 matches the manifest."""
    from ...files import sha256_of

    path = os.path.join(CHECKPOINT_DIR, entry["file"])
    if not os.path.exists(path):
        raise CodecError(f"shipped checkpoint {entry['id']}: file {path} is missing from the installed package")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise CodecError(
            f"shipped checkpoint {entry['id']}: {path} has SHA-256 {digest[:16]}..., "
            f"manifest says {entry['sha256'][:16]}...: the file is corrupt or was replaced"
        )
    return path
