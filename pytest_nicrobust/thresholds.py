"""thresholds.toml: how much degradation a release may show.

.. code-block:: toml

    [defaults]                   # limits on the mean over a test's images
    delta_psnr = 3.0             # dB
    bitrate_increase = 0.5       # bpp(x')/bpp(x) - 1

    [overrides.factorized-pgd]   # later tables win; globs match labels
    match = { codec = "bmshj2018-factorized*", attack = "pgd*", dataset = "*" }
    delta_psnr = 5.0
    bitrate_increase = false     # no gate on this metric here

    [overrides.adaptive-blur]    # mode: undefended | non-adaptive | adaptive | transfer
    match = { defense = "blur", mode = "adaptive" }
    delta_psnr = 8.0

    [overrides.transfer]         # transfer_* limits gate the transfer tests only
    match = { target = "jpeg*" }
    transfer_delta_psnr = 2.0

A test fails when a gated mean is above its limit; the message names the metric, its
value, its limit and the file and table the limit came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass

from . import NicrobustError

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
# mode: undefended | non-adaptive | adaptive | transfer;  target: the codec of a transfer test
MATCH_KEYS = ("codec", "attack", "objective", "dataset", "defense", "mode", "target")


class ThresholdsError(NicrobustError):
    category = "config error"


@dataclass(frozen=True)
class Limit:
    metric: str
    value: float
    source: str


@dataclass
class Thresholds:
    path: str
    tables: list  # (source, match dict, limits dict)

    def limits_for(self, params: dict) -> dict[str, Limit]:
        """Limits for a test with the given labels (see :func:`match_labels`)."""
        out: dict[str, Limit] = {}
        for source, match, limits in self.tables:
            if all(_matches(pattern, params.get(key, ())) for key, pattern in match.items()):
                for metric, value in limits.items():
                    if value is False:
                        out.pop(metric, None)
                    else:
                        out[metric] = Limit(metric, float(value), source)
        return out


def _glob(pattern: str) -> re.Pattern:
    """``*`` and ``?`` are wildcards; brackets are literal, so ``codec = "x[q3]"`` means what it says."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + r"\Z")


def _matches(pattern: str, labels) -> bool:
    rx = _glob(pattern)
    return any(rx.match(label) for label in labels)


def _limits(table: dict, path: str, where: str) -> dict:
    limits = {}
    for key, value in table.items():
        if key == "match":
            continue
        if key not in GATES:
            raise ThresholdsError(f"{path}: {where}.{key}: unknown metric; gateable: {', '.join(GATES)}")
        if value is not False and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ThresholdsError(f"{path}: {where}.{key}: expected a number or false, got {value!r}")
        limits[key] = value
    return limits


def load_thresholds(path: str) -> Thresholds:
    if not os.path.exists(path):
        raise ThresholdsError(f"thresholds file {path} not found; write one or pass --nicrobust-thresholds PATH")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"{path}: not valid TOML: {exc}") from None
    name = os.path.basename(path)
    for key in doc:
        if key not in ("defaults", "overrides"):
            raise ThresholdsError(f"{path}: {key}: unknown table; use [defaults] and [overrides.NAME]")
    tables = [(f"{name} [defaults]", {}, _limits(doc.get("defaults", {}), path, "defaults"))]
    for oname, table in doc.get("overrides", {}).items():
        where = f"overrides.{oname}"
        if not isinstance(table, dict):
            raise ThresholdsError(f"{path}: {where}: expected a table")
        match = table.get("match", {})
        if not isinstance(match, dict):
            raise ThresholdsError(f"{path}: {where}.match: expected an inline table like {{ codec = \"bmshj*\" }}")
        for key, pattern in match.items():
            if key not in MATCH_KEYS:
                raise ThresholdsError(f"{path}: {where}.match.{key}: unknown key; match on {', '.join(MATCH_KEYS)}")
            if not isinstance(pattern, str):
                raise ThresholdsError(f"{path}: {where}.match.{key}: expected a glob string, got {pattern!r}")
        tables.append((f"{name} [{where}]", match, _limits(table, path, where)))
    return Thresholds(path, tables)


def match_labels(params: dict, mode: str = "undefended") -> dict:
    """Labels a pattern may match, e.g. codec 'bmshj2018-factorized' and 'bmshj2018-factorized[q3]'."""
    codec = params["codec"]
    attack = params["attack"]
    labels = {
        "codec": (codec, f"{codec}[{params['bitrate']}]") if params.get("bitrate") else (codec,),
        "attack": (attack.split("[")[0], attack),
        "objective": (params["objective"],),
        "dataset": (params["dataset"],),
        "defense": (params.get("defense", "none"),),
        "mode": (mode,),
        "target": (params["target"], params["target"].split("[")[0]) if "target" in params else (),
    }
    return labels
