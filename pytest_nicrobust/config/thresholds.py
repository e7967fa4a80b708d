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

# A budget sweep's ε* must be at least this (in the sweep's units): a lower limit, unlike every gate of GATES.
MIN_EPS_STAR = "min_eps_star"
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
    inherited: set = field(default_factory=set)  # sources of the tables that come from the shipped file
    dropped: list = field(default_factory=list)  # shipped gates this file turns off: "metric (why)"
    not_computed: list = field(default_factory=list)  # shipped gates on metrics this run does not compute

    def regression_for(self, params: dict) -> dict:
        """Allowed changes against a baseline for a test with these labels (later tables win)."""
        return _resolve(self.regression, params, lambda metric, allow, source: allow)

    def check_computed(self, metrics) -> None:
        """A limit of yours on a metric this run does not compute would silently gate nothing: refuse it.
        A shipped one is set aside and named (``not_computed``): ``--nicrobust-metrics psnr`` chose that."""
        for source, _, limits in self.tables:
            for metric, value in list(limits.items()):
                needs = base_metric(metric)
                if value is not False and needs is not None and needs not in metrics:
                    if source in self.inherited:
                        del limits[metric]
                        if metric not in self.not_computed:
                            self.not_computed.append(metric)
                        continue
                    raise ThresholdsError(
                        f"{source}: {metric} gates {needs}, which this run does not compute "
                        f"(--nicrobust-metrics {','.join(metrics)}); add {needs} there or set {metric} = false"
                    )

    def unmatched(self, label_sets) -> list[str]:
        """Override tables that match none of the given label sets (see :func:`match_labels`)."""
        return [
            source
            for source, match, _ in self.tables[1:]
            if source not in self.inherited and match and not any(_matches_all(match, labels) for labels in label_sets)
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
        if key not in GATES and key != MIN_EPS_STAR:
            raise ThresholdsError(
                f"{path}: {where}.{key}: unknown metric; gateable: {', '.join(GATES)}, and {MIN_EPS_STAR} (budget sweeps)"
            )
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


def _read(path: str) -> tuple[list, list, bool]:
    """(limit tables, regression tables, extends) of one thresholds file, each key checked."""
    doc = read_toml(path, path, ThresholdsError)
    name = os.path.basename(path)
    for key in doc:
        if key not in ("defaults", "overrides", "regression", "extends"):
            raise ThresholdsError(
                f"{path}: {key}: unknown table; use [defaults], [overrides.NAME], [regression] and extends = false"
            )
    extends = doc.get("extends", True)
    if not isinstance(extends, bool):
        raise ThresholdsError(f"{path}: extends: expected true or false, got {extends!r}")
    tables: list = [(f"{name} [defaults]", {}, _limits(doc.get("defaults", {}), path, "defaults"))]
    overrides = doc.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ThresholdsError(f"{path}: overrides: expected tables [overrides.NAME]")
    for oname, table in overrides.items():
        where = f"overrides.{oname}"
        if not isinstance(table, dict):
            raise ThresholdsError(f"{path}: {where}: expected a table")
        tables.append((f"{name} [{where}]", _match(table, path, where), _limits(table, path, where)))
    return tables, _regression(doc.get("regression", {}), path, name), extends


def _is_shipped(path: str) -> bool:
    """The plugin's own limits (directly, or through a link such as this repository's thresholds.toml)."""
    try:
        return os.path.realpath(path) == os.path.realpath(DEFAULT_PATH)
    except OSError:
        return False


def _table(source: str) -> str:
    return source.split(" ", 1)[1]  # "[defaults]", "[overrides.transfer]", "[regression]"


def _inherit(shipped: list, own: list) -> list:
    """The shipped tables, then yours: your [defaults] after the shipped [defaults] (your keys win), an
    [overrides.NAME] of the same name in the shipped one's place, your other overrides last."""
    mine = {_table(t[0]): t for t in own[1:]}
    middle = [mine.pop(_table(t[0]), t) for t in shipped[1:]]
    return [shipped[0], own[0], *middle, *mine.values()]


def _gated(tables: list) -> dict[str, set]:
    """{table: metrics it gates with a number} (``false`` and None turn a gate off)."""
    return {_table(s): {m for m, v in limits.items() if v is not False and v is not None} for s, _, limits in tables}


def _dropped(shipped: list, own: list, extends: bool, prefix: str = "") -> list[str]:
    """The shipped gates your file turns off: set to false, in a table of yours that replaces the shipped
    one, or all of them with extends = false (unless your file gates the metric itself)."""
    ship, mine = _gated(shipped), _gated(own)
    everything_mine = set().union(*mine.values()) if mine else set()
    out = []
    for table, metrics in ship.items():
        for metric in sorted(metrics):
            if not extends:
                if metric not in everything_mine:
                    out.append(f"{prefix}{metric} (extends = false)")
            elif table in mine and metric not in mine[table] and (table not in ("[defaults]", "[regression]")):
                out.append(f"{prefix}{metric} ({table} replaced)")
            elif table in ("[defaults]", "[regression]") and table in mine and metric in _off(own):
                out.append(f"{prefix}{metric} (set to false)")
    return out


def _off(tables: list) -> set:
    first = tables[0][2]
    return {m for m, v in first.items() if v is False or v is None}


def load_thresholds(path: str, is_default: bool = False) -> Thresholds:
    """A thresholds file. Yours extends the shipped limits (``extends = false`` at its top: it does not):
    see :func:`_inherit`; the shipped gates it turns off are listed in ``dropped``."""
    if not os.path.exists(path):
        raise ThresholdsError(f"thresholds file {path} not found; write one or pass --nicrobust-thresholds PATH")
    tables, regression, extends = _read(path)
    if is_default or _is_shipped(path):
        sources = {t[0] for t in tables} | {t[0] for t in regression}
        return Thresholds(path, tables, is_default, regression, inherited=sources)
    shipped, shipped_regression, _ = _read(DEFAULT_PATH)
    dropped = _dropped(shipped, tables, extends) + _dropped(shipped_regression, regression, extends, "[regression] ")
    if extends:
        inherited = {t[0] for t in shipped} | {t[0] for t in shipped_regression}
        tables, regression = _inherit(shipped, tables), _inherit(shipped_regression, regression)
        return Thresholds(path, tables, False, regression, inherited=inherited, dropped=dropped)
    return Thresholds(path, tables, False, regression, dropped=dropped)


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
