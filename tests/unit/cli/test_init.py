"""init: a starter suite and thresholds that the plugin reads, written only where nothing is."""

from __future__ import annotations

from pytest_nicrobust.cli.init import main
from pytest_nicrobust.config.suite import parse_suite
from pytest_nicrobust.config.thresholds import load_thresholds


def test_init_writes_a_suite_and_thresholds_the_plugin_reads(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    suite = tmp_path / "suites" / "starter.suite.toml"
    cases = parse_suite(str(suite)).cases
    assert {c.codec.label for c in cases} == {"bmshj2018-hyperprior"} and cases[0].dataset.name == "skimage-photos"
    assert load_thresholds(str(tmp_path / "thresholds.toml")).tables
    out = capsys.readouterr().out
    assert "pytest " in out and "calibrate results.json" in out


def test_init_never_overwrites(tmp_path, capsys):
    (tmp_path / "thresholds.toml").write_text("[defaults]\ndelta_psnr = 1.0\n")
    assert main([str(tmp_path)]) == 2
    assert "thresholds.toml exists" in capsys.readouterr().err
    assert not (tmp_path / "suites").exists()  # nothing written, not even the suite
    assert (tmp_path / "thresholds.toml").read_text() == "[defaults]\ndelta_psnr = 1.0\n"
