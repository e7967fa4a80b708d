"""Names of the full-reference metrics a run may compute, and the smallest image each accepts.

Pure data (no torch), read when options and suites are checked, before any test runs.
:mod:`pytest_nicrobust.metrics` implements the metrics and holds itself to these sizes.
"""

from __future__ import annotations

METRICS = ("psnr", "mse", "msssim", "vmaf")

# MS-SSIM: 5 scales need min(H, W) > (3 - 1) * 2**4 with the smallest window (3).
# VMAF: vmaf-torch's 4-level ADM needs >= 2 px at its last level (17 -> 9 -> 5 -> 3 -> 2).
MIN_SIDE = {"psnr": 1, "mse": 1, "msssim": 33, "vmaf": 17}


def parse_metrics(text: str, where: str = "--nicrobust-metrics") -> tuple[str, ...]:
    """``"psnr, vmaf"`` -> ("psnr", "vmaf"); a ValueError names the unknown entry."""
    names = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    if not names:
        raise ValueError(f"{where}: no metric given; choose from {', '.join(METRICS)}")
    for name in names:
        if name not in METRICS:
            raise ValueError(f"{where}: unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return names


def min_side(metrics) -> tuple[int, str]:
    """The smallest image side the given metrics accept, and the metric that sets it."""
    side, name = max((MIN_SIDE[m], m) for m in metrics)
    return side, name
