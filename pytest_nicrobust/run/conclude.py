"""Concluding a test on a worker: which gates apply, recorded, shown, and the outcome.

The gates themselves are pure (:mod:`pytest_nicrobust.verdict`); this is where they meet pytest
(skip an ungated test, raise :class:`~pytest_nicrobust.verdict.gates.GateFailure`) and Allure.
"""

from __future__ import annotations

import pytest

from ..config.thresholds import MIN_EPS_STAR, match_labels
from ..metrics.registry import GATES
from ..names import UNDEFENDED, attack_label, codec_of, mode_suffix
from ..outputs import test_page
from ..record import means_of
from ..verdict.baseline import compare
from ..verdict.curves import eps_star, falls
from ..verdict.gates import UNGATED, GateFailure, GateResult, check, failure_message, failure_summary


def gate_modes(result: dict, modes, ctx) -> list:
    """The limits of thresholds.toml on each gated mode, then the allowed changes against the baseline."""
    gates = []
    for mode in modes:
        means = means_of(result, mode)
        limits = ctx.thresholds.limits_for(match_labels(result["params"], mode))
        gates += check(means, limits, mode, "transfer_" if mode == "transfer" else "")
    return gates + compare(result, modes, ctx.thresholds, ctx.baseline, ctx.compare_fail)


def curve_gates(result: dict, ctx) -> list:
    """ε* of a budget sweep (recorded per gated metric, the smallest as ``eps_star``), where its curve
    falls, the comparison with the baseline's curve, and the ``min_eps_star`` gate when a thresholds
    table sets one."""
    key, points = result["sweep"]["key"], result["points"]
    limits = ctx.thresholds.limits_for(match_labels(result["params"], UNDEFENDED))
    metrics = {m: lim for m, lim in limits.items() if m in GATES and not m.startswith("transfer_")}
    found = eps_star(points, key, metrics)
    if found:
        metric = min(found, key=found.get)
        result.update(eps_star=found[metric], eps_star_metric=metric, eps_star_by_metric=found)
    result["falls"] = falls(points, key, metrics)
    gates = compare(result, (UNDEFENDED,), ctx.thresholds, ctx.baseline, ctx.compare_fail)
    base = ctx.baseline.find(result) if ctx.baseline is not None and result.get("comparison") else None
    if base is not None and base.get("points"):  # release over release: where each breaks, and both curves
        result["comparison"].update(
            baseline_eps_star=base.get("eps_star"),
            baseline_points=[{key: p[key], "mean": p.get("mean", {})} for p in base["points"] if key in p],
        )
    if MIN_EPS_STAR not in limits:
        return gates
    limit = limits[MIN_EPS_STAR]
    value = float(result.get("eps_star", points[-1][key]))  # no crossing in the sweep: at least its largest budget
    crossed = "crossed" if found else "not crossed up to the largest budget"
    source = f"{limit.source} (ε* in {result['sweep']['unit'] or 'the budget'}; {crossed})"
    minimum = GateResult(MIN_EPS_STAR, value, limit.value, source, value >= limit.value, UNDEFENDED, kind="minimum")
    return [minimum, *gates]


def warnings_of(result: dict, modes) -> tuple[list[str], list[str]]:
    """(gradient-masking lines, lines of an attack that did not converge or a curve that falls) of a
    record: what the terminal, the test page and the verdict line repeat, and what
    ``--nicrobust-masking`` / ``--nicrobust-convergence`` turn into failures."""
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
    for point in result.get("points") or []:  # a budget sweep: each point's attack
        if point.get("converged") is False:
            key = result["sweep"]["key"]
            late.append(
                f"attack not converged on {codec_of(result['params'])}: {label} at {key} = {point[key]:g}"
                f"{result['sweep']['unit']}: its best objective still rose in the last quarter of its steps"
            )
    for fall in result.get("falls") or []:  # a curve that falls as the budget grows: a weak attack
        late.append(
            f"weak attack on {codec_of(result['params'])}: {label}: {fall['metric']} falls from "
            f"{fall['before']:.4g} at {fall['from']:g} to {fall['value']:.4g} at {fall['to']:g}{result['sweep']['unit']} "
            "although the larger budget holds the smaller one's x'"
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
    test_page.attach_curve(result)
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
