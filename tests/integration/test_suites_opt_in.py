"""Suites are opt-in by name: another tool's TOML under suites/ is not a suite, and a project's plain
pytest run is untouched by the plugin (nothing collected, nothing printed)."""

from __future__ import annotations

import pytest
from helpers import tiny_project, write_suite

LINT = '# another tool\'s settings\n[rules]\nline-length = 80\nselect = ["E", "F"]\n'
ORDINARY = "def test_one():\n    assert 1 + 1 == 2\n\n\ndef test_two():\n    assert 'a' < 'b'\n"


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_plain_pytest_is_untouched(pytester, workers):
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "lint.toml").write_text(LINT)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_ordinary.py").write_text(ORDINARY)
    result = pytester.runpytest_subprocess("-p", "no:randomly", *workers)
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    ours = [line for line in result.outlines + result.errlines if "nicrobust" in line.lower()]
    assert [line for line in ours if not line.startswith("plugins:")] == []  # pytest's own plugin list names it


def test_a_suite_is_named_by_its_suffix_or_the_ini_option(pytester, tiny_pt):
    tiny_project(pytester, tiny_pt)
    write_suite(pytester.path, name="mini.suite.toml")
    write_suite(pytester.path, name="listed.toml")
    write_suite(pytester.path, name="unlisted.toml")
    ids = {line.split("::")[0] for line in pytester.runpytest_subprocess("suites", "--collect-only", "-q").outlines}
    assert {i for i in ids if i.startswith("suites/")} == {"suites/mini.suite.toml"}
    pytester.makeini("[pytest]\nnicrobust_suites = suites/listed.toml\n")
    ids = {line.split("::")[0] for line in pytester.runpytest_subprocess("suites", "--collect-only", "-q").outlines}
    assert {i for i in ids if i.startswith("suites/")} == {"suites/mini.suite.toml", "suites/listed.toml"}
    named = pytester.runpytest_subprocess("suites/unlisted.toml", "--collect-only", "-q")
    assert any(line.startswith("suites/unlisted.toml::tiny[") for line in named.outlines)
