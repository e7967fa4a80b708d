"""The JPEG AI engine cache without a tree (CI): kept folders, their checks, their keys.

Weights files are a few bytes written by the test; the tree is a fake one (tests/jpegai_fakes.py).
"""

from __future__ import annotations

import json

from jpegai_fakes import fake_tree

from pytest_nicrobust.codecs.kinds.jpegai import cache
from pytest_nicrobust.codecs.kinds.jpegai.table import resolve_profile


def made(tmp_path):
    models = tmp_path / "made"
    (models / "VM_bop").mkdir(parents=True, exist_ok=True)
    (models / "VM_bop" / "encoder_Y_0.012.pth").write_bytes(b"calibrated Y")
    (models / "VM_common_int").mkdir(exist_ok=True)
    (models / "VM_common_int" / "Y_0.012.pth").write_bytes(b"hyper Y")
    return models


def test_kept_weights_are_found_whole_and_unchanged(tmp_path):
    folder = tmp_path / "cache" / cache.FOLDER / "k"
    assert cache.kept(str(folder)) is None  # nothing kept yet
    assert cache.keep(str(made(tmp_path)), str(folder)) == str(folder)
    listed = cache.kept(str(folder))
    assert sorted(listed) == ["VM_bop/encoder_Y_0.012.pth", "VM_common_int/Y_0.012.pth"]
    assert (folder / "VM_bop" / "encoder_Y_0.012.pth").read_bytes() == b"calibrated Y"
    assert [p.name for p in folder.parent.iterdir()] == ["k"]  # no staging folder left behind


def test_a_changed_or_missing_file_is_a_miss(tmp_path):
    folder = tmp_path / "k"
    cache.keep(str(made(tmp_path)), str(folder))
    (folder / "VM_bop" / "encoder_Y_0.012.pth").write_bytes(b"calibrated y")
    assert cache.kept(str(folder)) is None
    cache.keep(str(made(tmp_path)), str(folder))  # made again: the broken folder is replaced
    assert cache.kept(str(folder)) is not None
    (folder / "VM_common_int" / "Y_0.012.pth").unlink()
    assert cache.kept(str(folder)) is None
    (folder / cache.LIST).write_text("[1, 2]")
    assert cache.kept(str(folder)) is None


def test_a_folder_another_worker_finished_first_is_kept(tmp_path):
    folder = tmp_path / "k"
    cache.keep(str(made(tmp_path)), str(folder))
    before = json.loads((folder / cache.LIST).read_text())
    other = tmp_path / "other"
    (other / "VM_bop").mkdir(parents=True)
    (other / "VM_bop" / "encoder_Y_0.012.pth").write_bytes(b"made at the same time")
    assert cache.keep(str(other), str(folder)) == str(folder)
    assert json.loads((folder / cache.LIST).read_text()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".making-")] == []


def test_the_key_follows_the_tree_the_profile_the_beta_and_the_seed(tmp_path):
    root = fake_tree(tmp_path / "tree")
    main, high = resolve_profile(str(root), "main"), resolve_profile(str(root), "high")
    base = cache.key(str(root), main, 0.012, 0)
    assert cache.key(str(root), resolve_profile(str(root), "base"), 0.012, 0) == base  # the same profile
    others = {
        cache.key(str(root), high, 0.012, 0),
        cache.key(str(root), main, 0.5, 0),
        cache.key(str(root), main, 0.012, 1),
    }
    assert base not in others and len(others) == 3
    (root / "cfg" / "tools_off.json").write_text('{"changed": 1}')
    assert cache.key(str(root), main, 0.012, 0) != base
