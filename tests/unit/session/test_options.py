"""docs/options.md lists every option the plugin declares (options.add_options), and nothing else."""

from __future__ import annotations

import pathlib
import re

from pytest_nicrobust.options import add_options, parse_summary

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "options.md"


class _Group:
    def __init__(self):
        self.names = []

    def addoption(self, name, **kwargs):
        self.names.append(name)


class _Parser:
    def __init__(self):
        self.group = _Group()
        self.ini: list[str] = []

    def addini(self, name, *args, **kwargs):
        self.ini.append(name)

    def getgroup(self, *args, **kwargs):
        return self.group


def test_the_options_page_lists_every_option():
    parser = _Parser()
    add_options(parser)
    documented = set(re.findall(r"^\| `(--nicrobust-[a-z-]+)", DOC.read_text(), re.M))
    assert set(parser.group.names) == documented
    assert (
        set(parser.ini) == set(re.findall(r"^\| `(nicrobust_[a-z_]+)`", DOC.read_text(), re.M)) == {"nicrobust_suites"}
    )
    assert "--nicrobust-shard" in documented and "--nicrobust-summary" in documented


def test_summary_choice_is_checked():
    assert parse_summary("all") == "all"
    try:
        parse_summary("every")
    except ValueError as exc:
        assert "failed, worst, all" in str(exc)
    else:
        raise AssertionError("an unknown choice was accepted")
