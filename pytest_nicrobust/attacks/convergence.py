"""Did an attack converge? Its objective per step, and the rule that says it stopped gaining.

An attack that stopped while its objective was still rising says little about the codec: a few
more steps would have found more (Carlini et al., "On Evaluating Adversarial Robustness", 2019,
§5: report the loss curve and check that it flattened). Every attack with steps records the
objective of each image at each step (:attr:`pytest_nicrobust.attacks.base.Attack.trace`); this
module judges such a curve and writes it compactly into a test's record.

The rule, per image, on the best objective so far b_0 ≤ b_1 ≤ ... ≤ b_n (n + 1 recorded steps):

    converged  ⇔  b_n − b_m ≤ SHARE · (b_n − b_0),   m = ⌊(1 − LAST) · n⌋

i.e. the last quarter of the steps added at most a tenth of the attack's total gain. An attack that
gained nothing at all (b_n = b_0) has converged in this sense; whether it should have gained is the
gradient-masking checks' question (:mod:`pytest_nicrobust.verdict.masking`).

Torch-free: the controller and the outputs read it too.
"""

from __future__ import annotations

LAST = 0.25  # the last quarter of the steps ...
SHARE = 0.1  # ... may add at most this share of the total gain
RULE = f"the best objective gained at most {SHARE:.0%} of its total gain over the last {LAST:.0%} of the steps"
DIGITS = 6  # significant digits kept in the record (the curve is for people and plots)


def best_so_far(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out or v > out[-1] else out[-1])
    return out


def gains(values: list[float]) -> tuple[float, float]:
    """(gain over the last quarter, total gain) of the best objective so far."""
    best = best_so_far(values)
    if len(best) < 2:
        return 0.0, 0.0
    m = int((1 - LAST) * (len(best) - 1))
    return best[-1] - best[m], best[-1] - best[0]


def converged(values: list[float]) -> bool:
    late, total = gains(values)
    return late <= SHARE * total or total <= 0


def compact(values: list[float]) -> list[float]:
    return [float(f"{v:.{DIGITS}g}") for v in values]


def summary(traces: dict[str, list[float]], objective: str) -> dict:
    """The ``convergence`` block of a mode in a test's record: the objective per step of each image
    and their mean, whether every image converged, and which did not."""
    if not traces:
        return {}
    steps = min(len(v) for v in traces.values())
    mean = [sum(v[k] for v in traces.values()) / len(traces) for k in range(steps)]
    late = [name for name, values in traces.items() if not converged(values)]
    return {
        "objective": objective,
        "steps": steps,
        "mean": compact(mean),
        "per_image": {name: compact(values) for name, values in traces.items()},
        "converged": not late,
        "not_converged": late,
        "rule": RULE,
    }
