"""The metric vocabulary: one row per full-reference metric, from which every gate name, unit,
regression floor and aligned attack objective is derived.

Pure data (no torch), read when options and suites are checked, before any test runs.
Adding a metric: its row here, its function in :data:`pytest_nicrobust.metrics.full_reference.FULL_REFERENCE`
and, if the attacks have none aligned with it yet, its objective in
:mod:`pytest_nicrobust.attacks.objectives`. The gate names (``delta_<m>``, ``amp_<m>``,
``transfer_delta_<m>``), their units in every output, their floors and the
``--nicrobust-metrics`` default follow from the row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """A full-reference metric m(a, b) the run may compute."""

    name: str
    min_side: int  # the smallest image side it accepts
    higher_is_better: bool  # PSNR, MS-SSIM, VMAF: yes; MSE: no (deltas are sign-normalised on it)
    unit: str  # printed after every value of it and of its deltas ("" for none)
    floor: float  # a relative regression allowance ("10%") of its deltas never allows less than this
    objective: str  # the attack objective that maximises its primary delta Δm
    amp_objective: str  # ... and its amplification delta δm


# MS-SSIM: 5 scales need min(H, W) > (3 - 1) * 2**4 with the smallest window (3).
# VMAF: vmaf-torch's 4-level ADM needs >= 2 px at its last level (17 -> 9 -> 5 -> 3 -> 2).
ROWS = (
    Metric("psnr", 1, True, "dB", 0.05, "recon_error", "recon_shift"),
    Metric("mse", 1, False, "", 2e-5, "recon_error", "recon_shift"),
    Metric("msssim", 33, True, "", 0.002, "msssim_error", "msssim_shift"),
    Metric("vmaf", 17, True, "points", 0.2, "recon_error", "recon_shift"),
)
BY_NAME = {m.name: m for m in ROWS}
METRICS = tuple(BY_NAME)
MIN_SIDE = {m.name: m.min_side for m in ROWS}


@dataclass(frozen=True)
class Gate:
    """A gateable mean: a test fails when it is above its limit in thresholds.toml."""

    name: str
    unit: str
    floor: float  # see Metric.floor
    objective: str  # the attack objective aligned with it
    metric: str | None  # the full-reference metric it needs computed; None for the bitrate gates


def _gates() -> dict[str, Gate]:
    gates = {}
    for m in ROWS:
        gates[f"delta_{m.name}"] = Gate(f"delta_{m.name}", m.unit, m.floor, m.objective, m.name)
    for m in ROWS:
        gates[f"amp_{m.name}"] = Gate(f"amp_{m.name}", m.unit, m.floor, m.amp_objective, m.name)
    gates["bitrate_increase"] = Gate("bitrate_increase", "", 0.02, "bitrate", None)  # bpp(x')/bpp(x) − 1
    gates["delta_bpp"] = Gate("delta_bpp", "bpp", 0.005, "bitrate", None)
    # transfer tests: x' made for a source codec, measured on a target codec
    for name in [f"delta_{m.name}" for m in ROWS] + ["bitrate_increase"]:
        gates[f"transfer_{name}"] = Gate(
            f"transfer_{name}", gates[name].unit, gates[name].floor, gates[name].objective, gates[name].metric
        )
    return gates


GATES: dict[str, Gate] = _gates()
# The objective aligned with each gateable metric (docs/attacks.md): the one that maximises it.
GATE_OBJECTIVES = {name: g.objective for name, g in GATES.items() if not name.startswith("transfer_")}


def parse_metrics(text: str, where: str = "--nicrobust-metrics") -> tuple[str, ...]:
    """``"psnr, vmaf"`` -> ("psnr", "vmaf"); a ValueError names the unknown entry."""
    names = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    if not names:
        raise ValueError(f"{where}: no metric given; choose from {', '.join(METRICS)}")
    for name in names:
        if name not in METRICS:
            raise ValueError(f"{where}: unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return names


def min_side(metrics: Iterable[str]) -> tuple[int, str]:
    """The smallest image side the given metrics accept, and the metric that sets it."""
    side, name = max((MIN_SIDE[m], m) for m in metrics)
    return side, name


def base_metric(gate: str) -> str | None:
    """The full-reference metric a gate needs computed ("amp_vmaf" -> "vmaf"); None for bitrate gates."""
    return GATES[gate].metric if gate in GATES else None


def unit(column: str) -> str:
    """The unit of a gate or a record column: ``delta_psnr`` and ``psnr_clean`` -> "dB", ``delta_bpp``
    and ``bpp_adv`` -> "bpp", ``delta_vmaf`` -> "points"; "" for none."""
    if column in GATES:
        return GATES[column].unit
    head = column.removeprefix("transfer_").removeprefix("delta_").removeprefix("amp_").removeprefix("cost_")
    head = head.split("_")[0]
    if head in BY_NAME:
        return BY_NAME[head].unit
    return "bpp" if head == "bpp" else ""
