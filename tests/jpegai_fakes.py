"""Fake JPEG AI reference-software trees for tests that need no real one: the files the table check
looks for, empty extension files and profile files in the layout of either line, all written here."""

from __future__ import annotations

import json
import sysconfig
import textwrap

import pytest

from pytest_nicrobust.codecs.kinds.jpegai import table as jpegai_tree
from pytest_nicrobust.config.suite import SuiteError, parse_suite

DIS = ("simple", "main", "high")
IS = ("simple", "base", "high")


def fake_tree(folder, *, extensions=True, profiles=DIS, weights=(), line="DIS", profile_list=None, stream_ids=False):
    """A tree's files: ``profiles`` in decoder-id order, each stating its id (and a stream id with ``stream_ids``);
    ``profile_list`` writes cfg/profiles/profiles_list.json with those names."""
    for f in jpegai_tree.CODE_FILES:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / f).write_text("{}")
    (folder / "cfg" / "info.json").write_text(json.dumps({"codec_name": "JAI", "version": line}))
    (folder / "cfg" / "profiles").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(profiles):
        doc = {"decoder_profile_id": i, **({"stream_profile_id": 0} if stream_ids else {})}
        (folder / "cfg" / "profiles" / f"{name}.json").write_text(json.dumps(doc))
    if profile_list is not None:
        (folder / "cfg" / "profiles" / "profiles_list.json").write_text(json.dumps({"profiles": list(profile_list)}))
    if extensions:
        for name, where in jpegai_tree.EXTENSIONS.items():
            (folder / where).mkdir(parents=True, exist_ok=True)
            (folder / where / (name + sysconfig.get_config_var("EXT_SUFFIX"))).write_bytes(b"")
    for f in weights:
        (folder / "models" / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / "models" / f).write_bytes(b"")
    (folder / "models").mkdir(exist_ok=True)
    return folder


def suite_with(tmp_path, codecs: str):
    path = tmp_path / "jpegai.toml"
    path.write_text(
        textwrap.dedent(f"""
        images = 1
        crop = 64
        {codecs}
        [[attacks]]
        name = "pgd"
        steps = 2
        [[datasets]]
        name = "skimage-photos"
        """)
    )
    return path


def codec_table(root, extra='qualities = ["b0.012"]\nweights = "random"'):
    return f'[[codecs]]\nmodel = "jpegai"\nroot = "{root}"\n{extra}\n'


def one_line_error(path) -> str:
    with pytest.raises(SuiteError) as info:
        parse_suite(str(path), display="jpegai.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("jpegai.toml: codecs[0].")
    return message
