"""Concluding a test on a worker: which gates apply, recorded, shown, and the outcome.

The gates themselves are pure (:mod:`pytest_nicrobust.verdict`); this is where they meet pytest
(skip an ungated test, raise :class:`~pytest_nicrobust.verdict.gates.GateFailure`) and Allure.
"""

from __future__ import annotations

import pytest

from ..config.thresholds import match_labels
from ..names import attack_label, codec_of, mode_suffix
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


def warnings_of(result: dict, modes) -> tuple[list[str], list[str]]:
    """(gradient-masking lines, lines of an attack that had not converged) of a record: what the
    terminal, the test page and the verdict line repeat, and what ``--nicrobust-masking`` /
    ``--nicrobust-convergence`` turn into failures."""
    suspected = [item["line"] for item in result.get("masking") or []]
    label, late = attack_label(result["params"]), []
    for mode in modes:
        block = (result.get("modes") or {}).get(mode) or {}
        curve = block.get("convergence") or {}
        if curve and not curve["converged"]:
            late.append(
                f"attack not converged on {codec_of(result['params'])}: {label}{mode_suffix(mode)} on "
                f"{', '.join(curve['not_converged'])}: {curve['rule'].replace('the best', 'its best', 1)} was not "
                f"met in {curve['steps']} steps; more steps may find more"
            )
    return suspected, late


def conclude(test_name: str, result: dict, gates: list, ctx) -> None:
    """Record and attach the gates and the warnings (gradient masking, an attack that had not converged);
    skip an ungated test; raise GateFailure (after attaching why) if a gate was passed, or a warning
    the run's policy makes a failure was raised."""
    result["gates"] = [g.as_dict() for g in gates]
    result["gated"] = bool(gates)
    suspected, late = warnings_of(result, tuple(result.get("modes") or ()) or ("transfer",))
    if suspected or late:
        result["warnings"] = suspected + late
    test_page.attach_metric_table(result, gates)
    test_page.attach_convergence(result)
    failing = (suspected if ctx.masking == "fail" else []) + (late if ctx.convergence == "fail" else [])
    if gates and not all(g.passed for g in gates):
        message = failure_message(test_name, len(result["per_image"]), gates)
        message += "".join(f"\n  {line}" for line in suspected + late)
        test_page.attach_text("why it failed", message)
        raise GateFailure(failure_summary(codec_of(result["params"]), gates), message)
    if failing:
        option = "--nicrobust-masking=fail" if failing[0] in suspected else "--nicrobust-convergence=fail"
        message = f"{test_name}: " + "\n  ".join(failing) + f"\n  (a failure under {option})"
        test_page.attach_text("why it failed", message)
        raise GateFailure(failing[0], message)
    if not gates:
        pytest.skip(UNGATED)
