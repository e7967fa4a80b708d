"""Compare a test's mean metrics with its limits and build the failure message (pure: no files,
no Allure, no pytest; :mod:`pytest_nicrobust.run.verdict` concludes a test with these).

A test to which no limit applies is not a pass: it is skipped with :data:`UNGATED` as the
reason, its numbers still in the JSON and the report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..config.thresholds import Limit
from ..metrics.registry import unit
from ..names import mode_suffix


class GateFailure(AssertionError):
    """A metric passed its limit (or came out NaN), or got worse than the baseline allows.

    ``str()`` is one short line that groups alike failures (the worst gate's metric and the codec:
    what Allure's categories match and group by); ``details`` is the whole report, one line per gate.
    """

    def __init__(self, summary: str, details: str):
        super().__init__(summary)
        self.details = details


def headroom(value: float, limit: float, kind: str = "limit") -> float:
    """(limit − value) / |limit|: 1 = far below, 0 = at the limit, negative = over; NaN = -inf. For a
    ``minimum`` gate (ε* of a budget sweep) the other way round: (value − limit) / |limit|."""
    if math.isnan(value):
        return -math.inf
    return (value - limit if kind == "minimum" else limit - value) / max(abs(limit), 1e-9)


def unit_of(metric: str) -> str:
    """`` dB`` (with its space) or ``""``: the unit a gate's numbers are in."""
    return f" {unit(metric)}" if unit(metric) else ""


def failure_summary(codec: str, gates: list[GateResult]) -> str:
    """The status line of a failed test: the gate most over its limit and the codec, without numbers,
    ``delta_psnr over its limit: codec[q3]``. Allure matches its first words to a category and groups a
    category's failures by this whole line: one group per metric and codec, not one per test (the
    numbers, and the mode of a defended test, are in the failure text and on the test's page)."""
    worst = min((g for g in gates if not g.passed), key=lambda g: headroom(g.value, g.limit, g.kind))
    what = {"regression": "worse than the baseline allows", "minimum": "below its minimum"}.get(
        worst.kind, "over its limit"
    )
    return f"{worst.metric} {what}: {codec}"


@dataclass(frozen=True)
class GateResult:
    """A limit (``value`` the mean, ``limit`` its limit), a regression gate against a baseline
    (``value`` the change in the direction "worse", ``limit`` the allowed change), or a ``minimum``
    (``value`` a budget sweep's ε*, which must not fall below ``limit``)."""

    metric: str
    value: float
    limit: float
    source: str
    passed: bool
    mode: str = ""
    kind: str = "limit"  # or "regression", "minimum"
    baseline: float | None = None
    current: float | None = None

    def over(self) -> float:
        """How far past the limit (> 0: failed by that much; < 0: the margin left), in the metric's unit."""
        return self.limit - self.value if self.kind == "minimum" else self.value - self.limit

    def numbers(self) -> str:
        """``7.31 dB > limit 6 dB, over by 1.31 dB (22 %)``; for a regression gate the baseline, the
        current value and the change: ``2.18 → 3.18 dB (baseline → now), worse by 1 dB > allowed 0.3 dB``."""
        unit = unit_of(self.metric)
        if math.isnan(self.value) and self.kind == "regression":  # a NaN baseline is never gated: this run's
            return f"NaN in this run (baseline {self.baseline:.4g}{unit}, allowed change {self.limit:.3g}{unit}): the codec produced NaN"
        if math.isnan(self.value):
            return f"NaN (limit {self.limit:g}{unit}): the codec produced NaN"
        over = self.over()
        share = f" ({100 * abs(over) / abs(self.limit):.0f} %)" if abs(self.limit) > 1e-12 else ""  # of a limit 0: none
        if self.kind == "minimum":
            how = f"short by {over:.3g}" if over > 0 else f"margin {-over:.3g}"
            return f"ε* {self.value:.4g} {'<' if over > 0 else '>='} minimum {self.limit:g}, {how}{share}"
        if self.kind == "regression":
            text = (
                f"{self.baseline:.4g} → {self.current:.4g}{unit} (baseline → now), worse by {self.value:.3g}{unit} "
                f"{'>' if over > 0 else '<='} allowed {self.limit:.3g}{unit}"
            )
            return text + (f", over by {over:.3g}{unit}" if over > 0 else f", margin {-over:.3g}{unit}")
        if over > 0:
            return f"{self.value:.4g}{unit} > limit {self.limit:g}{unit}, over by {over:.3g}{unit}{share}"
        return f"{self.value:.4g}{unit} <= limit {self.limit:g}{unit}, margin {-over:.3g}{unit}{share}"

    def describe(self) -> str:
        return f"{self.metric}{mode_suffix(self.mode)}: {self.numbers()}  ({self.source})"

    def as_dict(self) -> dict:
        return asdict(self)


def check(means: dict, limits: dict[str, Limit], mode: str = "", prefix: str = "") -> list[GateResult]:
    """Gate ``means``; ``prefix`` maps a limit name to a mean (``transfer_delta_psnr`` -> ``delta_psnr``)."""
    results = []
    for metric, limit in limits.items():
        if not metric.startswith(prefix) or metric[len(prefix) :] not in means:
            continue  # metric not computed in this run (e.g. VMAF switched off), or not of this kind
        value = float(means[metric[len(prefix) :]])
        passed = not math.isnan(value) and value <= limit.value
        results.append(GateResult(metric, value, limit.value, limit.source, passed, mode))
    return results


def failure_message(test_name: str, n_images: int, results: list[GateResult]) -> str:
    failed = [r for r in results if not r.passed]
    lines = [f"{test_name}: {len(failed)} gate(s) failed (mean over {n_images} image(s)):"]
    lines += [f"  {r.describe()}" for r in failed]
    return "\n".join(lines)


UNGATED = "measured, no limit in thresholds.toml applies"
