"""Calibrated random weights kept in the plugin's cache folder, so that a tree's engine is calibrated once.

With ``weights = "random"`` a codec's build initialises the tree under the seed, calibrates a few
layers on a synthetic image (engine.py) and saves the weights in the tree's file layout. The same
tree, profile, beta and seed give the same weights (the calibration runs on one thread), so the
first worker to build them keeps them in ``<cache folder>/jpegai-random/<key>/`` and the others,
and later runs, load them like trained weights. The key hashes the tree's code and configuration,
its native extensions, the adapter's code, the profile's id and file, the beta and the seed.

A kept folder is used only when every file it lists has the SHA-256 it was written with (a
changed or truncated file is a miss, and the weights are made again); files are read with
``torch.load(weights_only=True)`` as trained weights are. Folders appear atomically (written under
a temporary name, then renamed), so two workers making the same weights at once both end with
one whole folder. The plugin's cache folder is private to the user (run/context.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile

from ....files import sha256_of
from .table import Profile, code_digest, extension_paths

FOLDER = "jpegai-random"
LIST = "weights.json"  # {relative path: sha256}, written last


def adapter_digest() -> str:
    """SHA-256 over this codec kind's Python files (what builds and calibrates the weights)."""
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            h.update(name.encode() + sha256_of(os.path.join(here, name)).encode())
    return h.hexdigest()


def key(root: str, profile: Profile, beta: float, seed: int) -> str:
    doc = {
        "tree_code": code_digest(root),
        "extensions": {name: sha256_of(path) for name, path in extension_paths(root).items()},
        "adapter": adapter_digest(),
        "profile": [profile.decoder_id, profile.path],
        "beta": beta,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def kept(folder: str) -> dict[str, str] | None:
    """{relative path: sha256} of a whole kept folder whose files still have their digests; None otherwise."""
    try:
        with open(os.path.join(folder, LIST)) as f:
            listed = json.load(f)
        if not isinstance(listed, dict) or not listed:
            return None
        for relative, digest in listed.items():
            path = os.path.join(folder, relative)
            if os.path.islink(path) or sha256_of(path) != digest:
                return None
    except (OSError, ValueError):
        return None
    return listed


def keep(models: str, folder: str) -> str:
    """Copy the weights in ``models`` to ``folder`` (listing their digests), atomically; returns ``folder``
    (whole: ours, or one another worker finished first)."""
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".making-", dir=parent)
    try:
        listed = {}
        for top, _, files in os.walk(models):
            for name in sorted(files):
                relative = os.path.relpath(os.path.join(top, name), models)
                os.makedirs(os.path.join(staging, os.path.dirname(relative)), exist_ok=True)
                shutil.copyfile(os.path.join(top, name), os.path.join(staging, relative))
                listed[relative] = sha256_of(os.path.join(staging, relative))
        with open(os.path.join(staging, LIST), "w") as f:
            json.dump(listed, f, indent=1, sort_keys=True)
        if kept(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)  # a broken earlier attempt
            with contextlib.suppress(OSError):  # another worker's folder arrived in between: theirs is as good
                os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
