"""JPEG AI weights without a tree (CI): the official manifest, Git LFS pointers, files that differ.

Weights files here are a few bytes written by the test; the manifest is swapped for one that
names them, except where the shipped manifest itself is checked.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from jpegai_fakes import codec_table, fake_tree, one_line_error, suite_with

from pytest_nicrobust.codecs.kinds.jpegai import table, weights
from pytest_nicrobust.codecs.kinds.jpegai.table import BETAS, OPERATION_POINTS, weight_files

POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 1589060\n"


@pytest.fixture(autouse=True)
def dependencies_present(monkeypatch):
    monkeypatch.setattr(table, "missing_dependencies", lambda: [])


def test_the_manifest_covers_every_file_the_adapter_loads():
    known = weights.manifest()
    needed = {f for i in OPERATION_POINTS for b in BETAS for f in weight_files(i, b)}
    assert needed <= set(known), sorted(needed - set(known))
    for path, entry in known.items():
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), path
        assert entry["size"] > 100_000 and re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), path
        assert "dis_md5" not in entry or re.fullmatch(r"[0-9a-f]{32}", entry["dis_md5"]), path


def test_a_pointer_where_weights_should_be_is_one_line_naming_the_file_and_lfs(tmp_path):
    files = weight_files(1, 0.012)
    root = fake_tree(tmp_path / "tree", weights=files)
    (root / "models" / files[2]).write_text(POINTER.format("ab" * 32))
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'qualities = ["b0.012"]')))
    assert "codecs[0].weights:" in message and files[2] in message
    assert "Git LFS pointer" in message and "git lfs pull" in message


def test_a_pointer_is_told_from_weights(tmp_path):
    pointer, large, other = tmp_path / "p.pth", tmp_path / "w.pth", tmp_path / "o.pth"
    pointer.write_text(POINTER.format("cd" * 32))
    large.write_bytes(POINTER.format("cd" * 32).encode() + bytes(4096))  # megabytes of weights start otherwise
    other.write_bytes(b"PK\x03\x04" + bytes(100))  # a torch zip file
    found = [weights.lfs_pointer(str(p)) for p in (pointer, large, other, tmp_path / "missing.pth")]
    assert found == [True, False, False, False]


@pytest.fixture
def models(tmp_path, monkeypatch):
    """Three weights files and a manifest naming two of them (one by its IS SHA-256, one by its DIS MD5)."""
    folder = tmp_path / "models"
    (folder / "VM_bop").mkdir(parents=True)
    content = {"VM_bop/a.pth": b"weights a", "VM_bop/b.pth": b"weights b", "VM_bop/c.pth": b"weights c"}
    for name, data in content.items():
        (folder / name).write_bytes(data)
    known = {
        "VM_bop/a.pth": {"sha256": hashlib.sha256(b"weights a").hexdigest(), "size": 9, "commit": "0" * 40},
        "VM_bop/b.pth": {
            "sha256": "0" * 64,
            "size": 9,
            "commit": "0" * 40,
            "dis_md5": hashlib.md5(b"weights b", usedforsecurity=False).hexdigest(),
        },
    }
    monkeypatch.setattr(weights, "manifest", lambda: known)
    return folder


def test_files_with_the_official_checksums_are_official(models):
    assert weights.weights_check(str(models), ["VM_bop/a.pth", "VM_bop/b.pth"]) == ("official", [])


def test_a_file_that_differs_is_named(models):
    (models / "VM_bop" / "b.pth").write_bytes(b"weights B")
    status, differ = weights.weights_check(str(models), ["VM_bop/a.pth", "VM_bop/b.pth", "VM_bop/c.pth"])
    assert status == "not official"
    assert [d.split(" ")[0] for d in differ] == ["VM_bop/b.pth", "VM_bop/c.pth"]
    assert "sha256" in differ[0] and "not an official file name" in differ[1]
