"""calibrate: limits from a first run, the worst mean per gate plus a stated margin, never over a file."""

from __future__ import annotations

import json
import math

import pytest
import tomllib

from pytest_nicrobust.cli.calibrate import main, round_up
from pytest_nicrobust.config.thresholds import load_thresholds


def _gate(metric, value, limit=1.0, kind="limit", mode="undefended"):
    return {"metric": metric, "value": value, "limit": limit, "kind": kind, "mode": mode, "passed": value <= limit}


def _run(path, tests, complete=True, **extra):
    doc = {
        "format": 3,
        "complete": complete,
        "provenance": {"timestamp": "2026-12-06T00:00:00Z", "seed": 0, "suites": {"/p/suites/a.suite.toml": "0" * 64}},
        "tests": tests,
        **extra,
    }
    path.write_text(json.dumps(doc))
    return path


TESTS = [
    {"name": "c[q3-pgd]", "gates": [_gate("delta_psnr", 3.1), _gate("bitrate_increase", 0.4)]},
    {"name": "c[q3-worst-case]", "gates": [_gate("delta_psnr", 3.72), _gate("delta_psnr", 9.0, 0.3, "regression")]},
    {"name": "c[q3-pgd-transfer-jpeg]", "gates": [_gate("transfer_delta_psnr", 1.5, mode="transfer")]},
    {"name": "c[q3-ftda]", "outcome": "failed", "error": "codec error: NaN"},  # no numbers: nothing to take
]


@pytest.mark.parametrize(
    "value, limit",
    [(4.464, 4.47), (4.47, 4.47), (0.00252, 0.00252), (0.0025201, 0.00253), (123.4, 124.0), (0, 0), (-1, 0)],
)
def test_limits_round_up_to_three_digits(value, limit):
    assert round_up(value) == limit


def test_the_worst_mean_of_each_gate_plus_the_margin(tmp_path, capsys):
    results = _run(tmp_path / "results.json", TESTS)
    out = tmp_path / "thresholds.toml"
    assert main([str(results), "-o", str(out)]) == 0
    text = out.read_text()
    doc = tomllib.loads(text)
    assert doc["defaults"] == {"delta_psnr": round_up(3.72 * 1.2), "bitrate_increase": round_up(0.4 * 1.2)}
    assert doc["overrides"]["transfer"] == {"match": {"mode": "transfer"}, "transfer_delta_psnr": 1.8}
    assert str(results) in text and "margin of 20 %" in text and "worst 3.72 in c[q3-worst-case]" in text
    assert load_thresholds(str(out)).limits_for  # a thresholds file the plugin reads
    assert "wrote" in capsys.readouterr().out


def test_a_stated_margin_and_never_over_a_file(tmp_path, capsys):
    results = _run(tmp_path / "results.json", TESTS)
    out = tmp_path / "mine.toml"
    assert main([str(results), "-o", str(out), "--margin", "0"]) == 0
    assert tomllib.loads(out.read_text())["defaults"]["delta_psnr"] == 3.72
    before = out.read_text()
    assert main([str(results), "-o", str(out)]) == 2
    assert out.read_text() == before and "exists; calibrate never overwrites" in capsys.readouterr().err


@pytest.mark.parametrize(
    "tests, extra, message",
    [
        (TESTS, {"complete": False, "stopped": {"reason": "stopping after 1 failures"}}, "stopping after 1 failures"),
        ([{"name": "t", "gates": [_gate("delta_psnr", math.nan)]}], {}, "t: delta_psnr is nan"),
        ([{"name": "t", "outcome": "failed"}], {}, "no test applied a limit"),
    ],
)
def test_bad_runs_are_one_line_and_write_nothing(tmp_path, capsys, tests, extra, message):
    results = _run(tmp_path / "results.json", tests, **{"complete": True, **extra})
    assert main([str(results), "-o", str(tmp_path / "t.toml")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "t.toml").exists()
