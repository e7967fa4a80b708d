"""A PGD sweep over ε = 1, 2, 4, 8, 16 /255 on a shipped codec: one test of kind curve, its damage
does not fall as ε grows, and ε* lies inside the sweep where a limit is crossed; min_eps_star gates it;
a second run compared with the first states where each broke."""

from __future__ import annotations

import json
import textwrap
from importlib import resources

from helpers import write_thresholds

from pytest_nicrobust.outputs.schema import problems

SCHEMA = json.loads((resources.files("pytest_nicrobust") / "results.schema.json").read_text())

SUITE = """
images = 1
crop = 128

[[codecs]]
model = "bmshj2018-hyperprior"
weights = "nicrobust"
qualities = [3]

[[attacks]]
name = "pgd"
presets = ["eps7"]
objectives = ["recon_error"]
steps = 4
sweep = { eps = [1, 2, 4, 8, 16] }

[[datasets]]
name = "skimage-photos"
"""


def test_a_budget_sweep_gives_a_curve_and_eps_star(pytester):
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "sweep.suite.toml").write_text(textwrap.dedent(SUITE))
    write_thresholds(pytester.path, "[defaults]\ndelta_psnr = 2.0\nmin_eps_star = 12.0\n")
    out = pytester.path / "r.json"
    result = pytester.runpytest_subprocess(
        "suites", "--nicrobust-json", str(out), "--nicrobust-metrics", "psnr", "-p", "no:cacheprovider"
    )
    doc = json.loads(out.read_text())
    assert not problems(doc, SCHEMA), problems(doc, SCHEMA)
    (curve,) = [t for t in doc["tests"] if t["kind"] == "curve"]
    values = [p["mean"]["delta_psnr"] for p in curve["points"]]
    assert [p["eps"] for p in curve["points"]] == [1, 2, 4, 8, 16]
    assert all(b >= a for a, b in zip(values, values[1:])), values  # the damage does not fall as ε grows
    assert curve["falls"] == []
    assert 1 < curve["eps_star"] < 16 and curve["eps_star_metric"] == "delta_psnr", (curve["eps_star"], values)
    gate = next(g for g in curve["gates"] if g["metric"] == "min_eps_star")
    assert gate["kind"] == "minimum" and gate["value"] == curve["eps_star"] and not gate["passed"]
    text = result.stdout.str()
    assert f"breaks at ε* = {curve['eps_star']:.3g}/255 (delta_psnr)" in text
    assert "ε* " in text and "minimum 12" in text, text[-3000:]
    again = pytester.path / "again.json"
    second = pytester.runpytest_subprocess(
        "suites",
        "--nicrobust-json",
        str(again),
        "--nicrobust-metrics",
        "psnr",
        "-p",
        "no:cacheprovider",
        "--nicrobust-compare",
        str(out),
    )
    (curve2,) = [t for t in json.loads(again.read_text())["tests"] if t["kind"] == "curve"]
    assert curve2["comparison"]["baseline_eps_star"] == curve["eps_star"]
    assert f"baseline at {curve['eps_star']:.3g}/255" in second.stdout.str()
