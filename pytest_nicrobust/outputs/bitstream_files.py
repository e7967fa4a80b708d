"""Bitstream tests' findings as files beside the results JSON (controller side; workers write nothing).

A worker puts each finding's stream in its record (base64, ``data``); here it becomes
``<json stem>-bitstreams/<test>-<property>-<sha256 prefix>.bin``, the record's ``stream`` names that
file and ``replay`` the command that decodes it again. The file's name comes from the record's own
test name and hash, checked against the bytes (a record is data); the folder is never a symbolic
link, files are never written through one. Writing again is harmless: the same name, the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from ..names import BITSTREAM, bitstream_file, replay_command


def save(results: list[dict], json_path: str) -> list[str]:
    """Write the findings of every bitstream record; returns the folders written to."""
    written: list[str] = []
    for r in results:
        if r.get("kind") != BITSTREAM:
            continue
        facts = r.get("bitstream") or {}
        for f in r.get("failures") or []:
            try:
                data = base64.b64decode(f.get("data") or "", validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{r.get('name')}: a finding's stream is not base64") from None
            if hashlib.sha256(data).hexdigest() != f.get("sha256"):
                raise ValueError(f"{r.get('name')}: a finding's stream does not match its sha256")
            path = bitstream_file(json_path, r["name"], f["property"], f["sha256"])
            _write(path, data)
            f["stream"] = path
            limits = (facts.get("max_pixels") or 0, (facts.get("settings") or {}).get("time_limit") or 0)
            f["replay"] = replay_command(r.get("id", r["name"]), path, *limits)
            folder = os.path.dirname(path) + "/"
            if folder not in written:
                written.append(folder)
    return written


def _write(path: str, data: bytes) -> None:
    folder = os.path.dirname(path) or "."
    if os.path.islink(folder):  # never follow a link planted where the run writes its files
        raise OSError(f"{folder} is a symbolic link; remove it or choose another --nicrobust-json")
    os.makedirs(folder, exist_ok=True)
    if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == len(data):
        with open(path, "rb") as f:
            if f.read() == data:
                return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
