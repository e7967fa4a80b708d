"""Concluding a test on a worker: which gates apply, recorded, shown, and the outcome.

The gates themselves are pure (:mod:`pytest_nicrobust.verdict`); this is where they meet pytest
(skip an ungated test, raise :class:`~pytest_nicrobust.verdict.gates.GateFailure`) and Allure.
"""

from __future__ import annotations

import pytest

from ..config.thresholds import match_labels
from ..names import codec_of
from ..outputs import test_page
from ..record import means_of
from ..verdict.baseline import compare
from ..verdict.gates import UNGATED, GateFailure, check, failure_message, failure_summary


def gate_modes(result: dict, modes, ctx) -> list:
    """The limits of thresholds.toml on each gated mode, then the allowed changes against the baseline."""
    gates = []
    for mode in modes:
        means = means_of(result, mode)
        limits = ctx.thresholds.limits_for(match_labels(result["params"], mode))
        gates += check(means, limits, mode, "transfer_" if mode == "transfer" else "")
    return gates + compare(result, modes, ctx.thresholds, ctx.baseline, ctx.compare_fail)


def conclude(test_name: str, result: dict, gates: list) -> None:
    """Record and attach the gates; skip an ungated test; raise GateFailure (after attaching why) if one was passed."""
    result["gates"] = [g.as_dict() for g in gates]
    result["gated"] = bool(gates)
    test_page.attach_metric_table(result, gates)
    if not gates:
        pytest.skip(UNGATED)
    if not all(g.passed for g in gates):
        message = failure_message(test_name, len(result["per_image"]), gates)
        test_page.attach_text("why it failed", message)
        p = result["params"]
        raise GateFailure(failure_summary(codec_of(p), gates), message)
