"""The ``[regression]`` value type: how much worse than a baseline a test may get (torch-free).

An allowed change is an absolute number in the metric's unit, or ``"N%"`` of the baseline's value;
it comes from thresholds.toml's ``[regression]`` tables or ``--nicrobust-compare-fail``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..metrics.registry import GATES
from .errors import ThresholdsError

CLI = "--nicrobust-compare-fail"


@dataclass(frozen=True)
class Allowed:
    metric: str
    amount: float
    relative: bool  # amount is a fraction of |baseline|
    source: str

    def absolute(self, baseline: float) -> float:
        return self.amount * abs(baseline) if self.relative else self.amount

    def text(self) -> str:
        return f"{100 * self.amount:g}%" if self.relative else f"{self.amount:g}"


def parse_allowed(metric: str, value, source: str, where: str) -> Allowed | None:
    """``0.3`` or ``"10%"`` -> Allowed; ``false`` -> None (no regression gate)."""
    if metric not in GATES:
        raise ThresholdsError(f"{where}: {metric}: unknown metric; gateable: {', '.join(GATES)}")
    if value is False:
        return None
    text = str(value).strip() if isinstance(value, str) else None
    try:
        if text is not None and text.endswith("%"):
            amount, relative = float(text[:-1]) / 100, True
        elif text is None and not isinstance(value, bool) and isinstance(value, (int, float)):
            amount, relative = float(value), False
        else:
            raise ValueError
    except ValueError:
        raise ThresholdsError(f"{where}: {metric}: expected a number or 'N%', got {value!r}") from None
    if not math.isfinite(amount) or amount < 0:
        raise ThresholdsError(f"{where}: {metric}: an allowed change is a finite number >= 0, got {value!r}")
    return Allowed(metric, amount, relative, source)


def parse_cli(text: str | None) -> dict[str, Allowed]:
    """``delta_psnr:0.3,bitrate_increase:10%`` -> {metric: Allowed}."""
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        metric, sep, value = part.partition(":")
        if not sep:
            raise ThresholdsError(
                f"{CLI}: {part!r}: expected METRIC:AMOUNT, e.g. delta_psnr:0.3 or bitrate_increase:10%"
            )
        allowed = parse_allowed(
            metric.strip(), value.strip() if value.strip().endswith("%") else _number(value, part), CLI, CLI
        )
        if allowed:
            out[allowed.metric] = allowed
    return out


def _number(value: str, part: str):
    try:
        return float(value)
    except ValueError:
        raise ThresholdsError(f"{CLI}: {part!r}: {value!r} is not a number or N%") from None


def parse_mapping(text: str | None) -> dict[str, str]:
    """``old=new,old2=new2`` -> {old: new}: baseline codec labels renamed to this run's."""
    out = {}
    for part in (text or "").split(","):
        if part.strip():
            old, sep, new = part.partition("=")
            if not sep or not old.strip() or not new.strip():
                raise ThresholdsError(f"--nicrobust-compare-map: {part!r}: expected OLD_LABEL=NEW_LABEL")
            out[old.strip()] = new.strip()
    return out
