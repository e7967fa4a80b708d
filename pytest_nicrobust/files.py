"""Files: content hashes, atomic writes and the checks on an output path, what every room does with a file.

Ground floor: standard library only, imported from anywhere in the package.

An output never replaces what it should not: :func:`check_output` refuses, before anything is
written, a target that exists and is not a regular file (a folder, a FIFO, a device node such as
``/dev/null``), a regular file that is neither empty nor a results JSON of this plugin (a suite, a
thresholds file), and any input of the same run (the baseline, a shard); :func:`write_json_atomic`
and :func:`write_file` never write into anything but a regular file, nor through a symbolic link.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from typing import Any

RESULTS_START = re.compile(rb'\A\s*\{\s*"format"\s*:\s*\d+\s*,')  # how every results JSON of this plugin begins


class OutputPathError(ValueError):
    """An output path that would replace something it must not (one line: the option, the path, why)."""


def _kind(mode: int) -> str:
    for test, word in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return word
    return "not a regular file"


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: str, option: str, inputs: Mapping[str, str | None] | None = None) -> None:
    """Refuse (:class:`OutputPathError`) a results JSON target ``path`` given by ``option`` before
    anything is written: one that is an input of the same run (``inputs``: what it is -> its path),
    whose folder is missing or read-only, that exists and is not a regular file, or a regular file
    that is neither empty nor a results JSON of this plugin (it would be replaced)."""
    for what, other in (inputs or {}).items():
        if other and os.path.exists(other) and _same(path, other):
            raise OutputPathError(f"{option} {path}: it is {what} of this run; choose another path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OutputPathError(f"{option} {path}: folder {folder} does not exist or is not writable")
    try:
        st = os.stat(path)  # through a link: what it points at
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise OutputPathError(
            f"{option} {path}: exists and is {_kind(st.st_mode)}, not a results JSON; "
            "nothing was written: choose another path"
        )
    if st.st_size == 0:
        return
    with open(path, "rb") as f:
        head = f.read(4096)
    if not RESULTS_START.match(head):
        shown = head[:40].decode("utf-8", "replace").strip().splitlines()[0][:40] if head.strip() else ""
        raise OutputPathError(
            f"{option} {path}: exists and is not a results JSON of pytest-nicrobust (it begins "
            f"{shown!r}), so it would be replaced; nothing was written: remove it or choose "
            "another path"
        )


def check_output_folder(path: str, option: str) -> None:
    """Refuse a folder the run writes into that exists as something else, or is a symbolic link."""
    if os.path.islink(path):
        raise OutputPathError(
            f"{option} {path}: is a symbolic link; nothing is written through one: choose another path"
        )
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"{option} {path}: exists and is not a folder; choose another path")


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``, a regular file or none yet: never through a symbolic link, never
    into a FIFO or a device (``OSError`` naming the path instead)."""
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        raise OSError(f"{path} is {_kind(os.lstat(path).st_mode)}: not written")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


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
    follows the umask (0644 under 022), as for the other files of a run. What is at ``path`` must be a
    regular file (or a symbolic link, which the rename replaces): a folder, a FIFO or a device node
    is never replaced (``OSError``)."""
    if os.path.lexists(path) and not (stat.S_ISREG(os.lstat(path).st_mode) or os.path.islink(path)):
        raise OSError(f"{path} is {_kind(os.lstat(path).st_mode)}: not replaced")
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
