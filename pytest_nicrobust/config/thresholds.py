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

import math
import os
import re
from dataclasses import dataclass, field

from ..metrics.registry import GATES, base_metric
from ..names import MODES, WORST_CASE, codec_label
from .errors import ThresholdsError, read_toml
from .regression import parse_allowed

# mode: undefended | non-adaptive | adaptive | transfer;  target: the codec of a transfer test
MATCH_KEYS = ("codec", "attack", "objective", "dataset", "defense", "mode", "target")
# The limits used when the rootdir has no thresholds.toml (the repository's own file links here).
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "default_thresholds.toml")


@dataclass(frozen=True)
class Limit:
    metric: str
    value: float
    source: str


@dataclass
class Thresholds:
    path: str
    tables: list  # (source, match dict, limits dict)
    is_default: bool = False  # the plugin's own limits (no thresholds.toml in the rootdir)
    regression: list = field(default_factory=list)  # (source, match, {metric: Allowed | None})

    def regression_for(self, params: dict) -> dict:
        """Allowed changes against a baseline for a test with these labels (later tables win)."""
        return _resolve(self.regression, params, lambda metric, allow, source: allow)

    def check_computed(self, metrics) -> None:
        """A limit on a metric this run does not compute would silently gate nothing: refuse it."""
        for source, _, limits in self.tables:
            for metric, value in limits.items():
                needs = base_metric(metric)
                if value is not False and needs is not None and needs not in metrics:
                    raise ThresholdsError(
                        f"{source}: {metric} gates {needs}, which this run does not compute "
                        f"(--nicrobust-metrics {','.join(metrics)}); add {needs} there or set {metric} = false"
                    )

    def unmatched(self, label_sets) -> list[str]:
        """Override tables that match none of the given label sets (see :func:`match_labels`)."""
        return [
            source
            for source, match, _ in self.tables[1:]
            if not any(_matches_all(match, labels) for labels in label_sets)
        ]

    def limits_for(self, params: dict) -> dict[str, Limit]:
        """Limits for a test with the given labels (see :func:`match_labels`)."""
        return _resolve(self.tables, params, lambda metric, value, source: Limit(metric, float(value), source))


def _resolve(tables: list, params: dict, entry) -> dict:
    """{metric: entry(metric, value, source)} over the tables matching ``params`` in order, later
    ones winning; a value of false (None for an allowed change) removes the metric."""
    out: dict = {}
    for source, match, values in tables:
        if _matches_all(match, params):
            for metric, value in values.items():
                if value is False or value is None:
                    out.pop(metric, None)
                else:
                    out[metric] = entry(metric, value, source)
    return out


def _glob(pattern: str) -> re.Pattern:
    """``*`` and ``?`` are wildcards; brackets are literal, so ``codec = "x[q3]"`` means what it says."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + r"\Z")


def _matches(pattern: str, labels) -> bool:
    rx = _glob(pattern)
    return any(rx.match(label) for label in labels)


def _matches_all(match: dict, labels: dict) -> bool:
    return all(_matches(pattern, labels.get(key, ())) for key, pattern in match.items())


def _vocabulary(key: str):
    """The names a closed match key can take (None: open, e.g. codec labels and data sets)."""
    from ..attacks.presets import ATTACKS, NO_OBJECTIVE, OBJECTIVES
    from ..defenses.registry import DEFENSES

    return {
        "mode": MODES,
        "attack": tuple(ATTACKS) + (WORST_CASE,),
        "defense": tuple(DEFENSES),
        "objective": OBJECTIVES + (NO_OBJECTIVE, "all"),
    }.get(key)


def _check_pattern(key: str, pattern: str, path: str, where: str) -> None:
    """A pattern on a closed key that can match nothing (``mode = "adaptve"``) is a typo: say so."""
    names = _vocabulary(key)
    if names is None:
        return
    head = pattern.split("[")[0] if key == "attack" else pattern.split(":")[0] if key == "objective" else pattern
    if not any(_glob(head).match(n) for n in names):
        raise ThresholdsError(
            f"{path}: {where}.match.{key}: {pattern!r} matches no {key}; {key}s are {', '.join(names)}"
        )


def _limits(table: dict, path: str, where: str) -> dict:
    if not isinstance(table, dict):
        raise ThresholdsError(f"{path}: {where}: expected a table of limits, got {table!r}")
    limits = {}
    for key, value in table.items():
        if key == "match":
            continue
        if key not in GATES:
            raise ThresholdsError(f"{path}: {where}.{key}: unknown metric; gateable: {', '.join(GATES)}")
        if value is not False and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise ThresholdsError(f"{path}: {where}.{key}: expected a finite number or false, got {value!r}")
        if value is not False and value < 0:  # an attack makes images worse: only an improvement would pass
            raise ThresholdsError(
                f"{path}: {where}.{key}: {value!r} is negative; a limit below 0 passes only when "
                'the attack improves the image (write 0 for "no degradation at all")'
            )
        limits[key] = value
    return limits


def load_thresholds(path: str, is_default: bool = False) -> Thresholds:
    if not os.path.exists(path):
        raise ThresholdsError(f"thresholds file {path} not found; write one or pass --nicrobust-thresholds PATH")
    doc = read_toml(path, path, ThresholdsError)
    name = os.path.basename(path)
    for key in doc:
        if key not in ("defaults", "overrides", "regression"):
            raise ThresholdsError(f"{path}: {key}: unknown table; use [defaults], [overrides.NAME] and [regression]")
    tables: list = [(f"{name} [defaults]", {}, _limits(doc.get("defaults", {}), path, "defaults"))]
    overrides = doc.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ThresholdsError(f"{path}: overrides: expected tables [overrides.NAME]")
    for oname, table in overrides.items():
        where = f"overrides.{oname}"
        if not isinstance(table, dict):
            raise ThresholdsError(f"{path}: {where}: expected a table")
        tables.append((f"{name} [{where}]", _match(table, path, where), _limits(table, path, where)))
    return Thresholds(path, tables, is_default, _regression(doc.get("regression", {}), path, name))


def _match(table: dict, path: str, where: str) -> dict:
    match = table.get("match", {})
    if not isinstance(match, dict):
        raise ThresholdsError(f'{path}: {where}.match: expected an inline table like {{ codec = "bmshj*" }}')
    for key, pattern in match.items():
        if key not in MATCH_KEYS:
            raise ThresholdsError(f"{path}: {where}.match.{key}: unknown key; match on {', '.join(MATCH_KEYS)}")
        if not isinstance(pattern, str):
            raise ThresholdsError(f"{path}: {where}.match.{key}: expected a glob string, got {pattern!r}")
        _check_pattern(key, pattern, path, where)
    return match


def _regression(doc, path: str, name: str) -> list:
    """[regression] (allowed changes against --nicrobust-compare) and its [regression.overrides.NAME]."""
    if not isinstance(doc, dict):
        raise ThresholdsError(f"{path}: regression: expected a table")
    overrides = doc.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ThresholdsError(f"{path}: regression.overrides: expected tables [regression.overrides.NAME]")
    tables: list = [(f"{name} [regression]", {}, {k: v for k, v in doc.items() if k != "overrides"})]
    for oname, table in overrides.items():
        if not isinstance(table, dict):
            raise ThresholdsError(f"{path}: regression.overrides.{oname}: expected a table")
        where = f"regression.overrides.{oname}"
        tables.append(
            (f"{name} [{where}]", _match(table, path, where), {k: v for k, v in table.items() if k != "match"})
        )
    return [
        (
            source,
            match,
            {m: parse_allowed(m, v, source, f"{path}: {source.split(' ', 1)[1][1:-1]}") for m, v in values.items()},
        )
        for source, match, values in tables
    ]


def match_labels(params: dict, mode: str = "undefended") -> dict:
    """Labels a pattern may match, e.g. codec 'bmshj2018-factorized' and 'bmshj2018-factorized[q3]'."""
    codec = params["codec"]
    attack = params["attack"]
    labels = {
        "codec": (codec, codec_label(codec, params["bitrate"])) if params.get("bitrate") else (codec,),
        "attack": (attack.split("[")[0], attack),
        "objective": (params["objective"],),
        "dataset": (params["dataset"],),
        "defense": (params.get("defense", "none"),),
        "mode": (mode,),
        "target": (params["target"], params["target"].split("[")[0]) if "target" in params else (),
    }
    return labels
