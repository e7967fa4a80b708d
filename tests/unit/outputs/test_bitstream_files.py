"""Bitstream findings saved beside the results JSON by the controller (outputs/bitstream_files.py)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from pytest_nicrobust.outputs import bitstream_files


def record(data: bytes, sha: str | None = None) -> dict:
    return {
        "id": "suites/s.toml::tiny[q1-bitstream]",
        "name": "tiny[q1-bitstream]",
        "kind": "bitstream",
        "bitstream": {"settings": {"time_limit": 5.0}, "max_pixels": 65536},
        "failures": [
            {
                "property": "crash",
                "sha256": sha or hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "error": "killed by SIGSEGV",
                "recipe": "real stream 0: emptied",
                "stream": None,
                "replay": "",
                "data": base64.b64encode(data).decode(),
            }
        ],
    }


def test_each_finding_becomes_a_file_named_by_its_test_and_hash_with_its_replay_command(tmp_path):
    results = [record(b"\x00\x01 stream"), {"kind": "case", "name": "other"}]
    json_path = str(tmp_path / "r.json")
    assert bitstream_files.save(results, json_path) == [str(tmp_path / "r-bitstreams") + "/"]
    finding = results[0]["failures"][0]
    path = finding["stream"]
    assert path.startswith(str(tmp_path / "r-bitstreams" / "tiny_q1-bitstream_-crash-"))
    with open(path, "rb") as f:
        assert f.read() == b"\x00\x01 stream"
    assert finding["replay"] == (
        f"python -m pytest_nicrobust replay 'suites/s.toml::tiny[q1-bitstream]' {path} --max-pixels 65536 --time-limit 5"
    )
    assert bitstream_files.save(results, json_path)  # again: the same file, nothing broken


def test_a_stream_that_does_not_match_its_hash_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not match its sha256"):
        bitstream_files.save([record(b"abc", sha="0" * 64)], str(tmp_path / "r.json"))


def test_the_folder_is_never_a_symbolic_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "r-bitstreams")
    with pytest.raises(OSError, match="is a symbolic link"):
        bitstream_files.save([record(b"abc")], str(tmp_path / "r.json"))
    assert list(elsewhere.iterdir()) == []
