"""verdict.gates on its own: which limits a mean passes, headroom, and the failure message."""

from __future__ import annotations

import math

import pytest

from pytest_nicrobust.config.thresholds import Limit
from pytest_nicrobust.verdict.gates import GateResult, check, failure_message, failure_summary, headroom


def _limits(**values):
    return {m: Limit(m, v, "thresholds.toml [defaults]") for m, v in values.items()}


def test_a_mean_at_the_limit_passes_and_above_it_fails():
    gates = check({"delta_psnr": 3.0, "bitrate_increase": 0.51}, _limits(delta_psnr=3.0, bitrate_increase=0.5))
    by = {g.metric: g for g in gates}
    assert by["delta_psnr"].passed and not by["bitrate_increase"].passed
    assert by["bitrate_increase"].value == pytest.approx(0.51) and by["bitrate_increase"].limit == 0.5


def test_nan_always_fails():
    (gate,) = check({"delta_psnr": float("nan")}, _limits(delta_psnr=100.0))
    assert not gate.passed
    assert "NaN" in gate.describe()


def test_metrics_not_computed_are_not_gated():
    assert check({"delta_psnr": 1.0}, _limits(delta_vmaf=5.0)) == []


def test_transfer_prefix_maps_limits_to_means():
    gates = check({"delta_psnr": 2.0}, _limits(transfer_delta_psnr=1.5, delta_psnr=9.0), "transfer", "transfer_")
    assert [(g.metric, g.passed) for g in gates] == [("transfer_delta_psnr", False)]


def test_headroom():
    assert headroom(1.0, 4.0) == pytest.approx(0.75)
    assert headroom(5.0, 4.0) == pytest.approx(-0.25)
    assert headroom(float("nan"), 4.0) == -math.inf


def test_failure_message_and_summary_name_the_worst_gate():
    gates = [
        GateResult("delta_psnr", 5.0, 4.5, "t [defaults]", False, "adaptive"),
        GateResult("bitrate_increase", 3.0, 1.0, "t [defaults]", False, "adaptive"),
        GateResult("delta_msssim", 0.1, 0.2, "t [defaults]", True, "adaptive"),
    ]
    # the status line (Allure's red box) carries the value, the limit and how far over
    assert (
        failure_summary("codec[q3]", gates)
        == "bitrate_increase over its limit: codec[q3]"  # no numbers: Allure groups failures by this line
    )
    message = failure_message("codec[q3-pgd]", 4, gates)
    assert message.splitlines()[0] == "codec[q3-pgd]: 2 gate(s) failed (mean over 4 image(s)):"
    assert "delta_psnr [adaptive]: 5 dB > limit 4.5 dB, over by 0.5 dB (11 %)" in message
    assert "delta_msssim" not in message


def test_regression_gate_describes_baseline_and_change():
    g = GateResult(
        "delta_psnr",
        1.0,
        0.3,
        "--nicrobust-compare-fail: allowed 0.3",
        False,
        "undefended",
        kind="regression",
        baseline=2.18,
        current=3.18,
    )
    assert g.describe().startswith(
        "delta_psnr: 2.18 → 3.18 dB (baseline → now), worse by 1 dB > allowed 0.3 dB, over by 0.7 dB"
    )
    ok = GateResult("delta_psnr", 3.0, 4.5, "t", True, "undefended")
    assert ok.numbers() == "3 dB <= limit 4.5 dB, margin 1.5 dB (33 %)"
