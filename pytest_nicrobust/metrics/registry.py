"""The metric vocabulary: full-reference metrics a run may compute (and the smallest image each
accepts), and every gateable name with its unit.

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


# Every gateable metric with its unit (for messages). Δ: primary delta, δ (amp_): amplification.
GATES = {
    "delta_psnr": "dB",
    "delta_mse": "",
    "delta_msssim": "",
    "delta_vmaf": "",
    "amp_psnr": "dB",
    "amp_mse": "",
    "amp_msssim": "",
    "amp_vmaf": "",
    "bitrate_increase": "",
    "delta_bpp": "bpp",
    # transfer tests: x' made for a source codec, measured on a target codec
    "transfer_delta_psnr": "dB",
    "transfer_delta_mse": "",
    "transfer_delta_msssim": "",
    "transfer_delta_vmaf": "",
    "transfer_bitrate_increase": "",
}


def base_metric(gate: str) -> str | None:
    """The full-reference metric a gate needs computed ("amp_vmaf" -> "vmaf"); None for bitrate gates."""
    name = gate.removeprefix("transfer_")
    if name in ("bitrate_increase", "delta_bpp"):
        return None
    return name.split("_", 1)[1]
