"""A check-codec SPEC that names a file that is not there says so (it said the SPEC was not of the form
'<nicrobust|zoo|random>:<model>@q<N>')."""

from __future__ import annotations

import pytest

from pytest_nicrobust.cli.check_codec import main


@pytest.mark.parametrize(
    "argv, line",
    [
        (["suites/nothere.toml"], "check-codec: suites/nothere.toml: no such file (a suite or a checkpoint)"),
        (["ckpt.pth.tar"], "check-codec: ckpt.pth.tar: no such file (a suite or a checkpoint)"),
        (["ours.nicrobust:make@3", "--weights", "w.pt"], "check-codec: --weights w.pt: no such file"),
    ],
)
def test_a_missing_file_is_named(tmp_path, monkeypatch, capsys, argv, line):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == line
