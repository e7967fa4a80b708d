"""Release over release: compare a run with a saved one (pytest-benchmark style).

``--nicrobust-compare BASELINE.json`` loads a previous run's ``--nicrobust-json``; tests are
matched by their parameters (codec label, quality, attack, objective, dataset, defense, transfer
target), with ``--nicrobust-compare-map ourcodec-v1=ourcodec-v2`` renaming baseline labels.
An allowed change in the direction "worse" (every gated metric is worse when higher) comes from
``--nicrobust-compare-fail=delta_psnr:0.3,bitrate_increase:10%`` or a ``[regression]`` table of
thresholds.toml (with ``[regression.overrides.NAME]`` tables and the usual ``match`` globs); an
absolute number is in the metric's unit, ``N%`` is relative to the baseline's value.

Pure Python (no torch): read on the controller and on each worker.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

from . import NicrobustError
from .gates import GateResult
from .thresholds import GATES, ThresholdsError, match_labels

CLI = "--nicrobust-compare-fail"


class BaselineError(NicrobustError):
    category = "config error"


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
            raise ThresholdsError(f"{CLI}: {part!r}: expected METRIC:AMOUNT, e.g. delta_psnr:0.3 or bitrate_increase:10%")
        allowed = parse_allowed(metric.strip(), value.strip() if value.strip().endswith("%") else _number(value, part),
                                CLI, CLI)
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
                raise BaselineError(f"--nicrobust-compare-map: {part!r}: expected OLD_LABEL=NEW_LABEL")
            out[old.strip()] = new.strip()
    return out


def test_key(params: dict, kind: str, mapping: dict[str, str] | None = None) -> str:
    """What matches a test across runs: its parameters, baseline labels renamed by ``mapping``."""
    mapping = mapping or {}
    p = dict(params)
    p["codec"] = mapping.get(p["codec"], p["codec"])
    if "target" in p:
        label, bracket, rest = p["target"].partition("[")
        p["target"] = mapping.get(label, label) + bracket + rest
    return json.dumps([kind, sorted(p.items())])


@dataclass
class Baseline:
    path: str
    sha256: str
    tests: dict  # key -> result
    provenance: dict

    def find(self, result: dict) -> dict | None:
        return self.tests.get(test_key(result["params"], result.get("kind", "case")))

    def keys(self) -> set[str]:
        return set(self.tests)


def load_baseline(path: str, mapping: dict[str, str]) -> Baseline:
    from .outputs.provenance import sha256_of

    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise BaselineError(f"--nicrobust-compare {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"--nicrobust-compare {path}: not a results JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise BaselineError(f"--nicrobust-compare {path}: not a --nicrobust-json file (no 'tests' list)")
    tests = {}
    for r in doc["tests"]:
        if isinstance(r, dict) and "params" in r and r.get("mean") is not None:
            tests[test_key(r["params"], r.get("kind", "case"), mapping)] = r
    return Baseline(os.path.abspath(path), sha256_of(path) or "", tests, doc.get("provenance", {}))


def _means(result: dict, mode: str) -> dict:
    if mode == "transfer" or "modes" not in result:
        return result.get("mean") or {}
    return (result["modes"].get(mode) or {}).get("mean") or {}


def regression_gates(result: dict, base: dict, mode: str, allowed: dict[str, Allowed]):
    """GateResults of the allowed changes in one mode (value = change, limit = allowed change), and the changes."""
    gates, changes = [], {}
    now, before = _means(result, mode), _means(base, mode)
    for name, allow in allowed.items():
        metric = name.removeprefix("transfer_")  # delta_psnr applies to every test, transfer_* to transfer cells
        if metric not in now or metric not in before or (name.startswith("transfer_") and mode != "transfer"):
            continue
        change = float(now[metric]) - float(before[metric])
        limit = allow.absolute(float(before[metric]))
        changes[metric] = change
        gates.append(GateResult(name, change, limit, f"{allow.source}: allowed {allow.text()}",
                                not math.isnan(change) and change <= limit, mode, kind="regression",
                                baseline=float(before[metric]), current=float(now[metric])))
    return gates, changes


def compare(result: dict, modes, thresholds, baseline: Baseline | None, cli: dict[str, Allowed]) -> list:
    """Regression gates of a test against its baseline; records ``result["comparison"]``."""
    if baseline is None:
        return []
    base = baseline.find(result)
    if base is None:
        result["comparison"] = {"status": "new", "baseline": baseline.path}
        return []
    gates, changes = [], {}
    for mode in modes:
        allowed = {**thresholds.regression_for(match_labels(result["params"], mode)), **cli}
        g, c = regression_gates(result, base, mode, allowed)
        gates += g
        changes.update({k if mode == modes[-1] else f"{k} [{mode}]": v for k, v in c.items()})
    main = _means(base, modes[-1])
    result["comparison"] = {"status": "compared", "baseline": baseline.path, "baseline_id": base.get("id"),
                            "baseline_mean": {k: v for k, v in main.items() if k in GATES},
                            "change": changes or _changes(result, base, modes[-1])}
    return gates


def _changes(result: dict, base: dict, mode: str) -> dict:
    """Change of every gateable mean, for the report, when no allowed change gates it."""
    now, before = _means(result, mode), _means(base, mode)
    return {m: float(now[m]) - float(before[m]) for m in GATES if m in now and m in before}


def run_comparison(results: list[dict], baseline: Baseline | None) -> dict | None:
    """The run-level comparison: new tests, baseline tests missing from this run, regressions."""
    if baseline is None:
        return None
    here = {test_key(r["params"], r.get("kind", "case")) for r in results if "params" in r}
    missing = sorted(baseline.tests[k].get("name", k) for k in baseline.keys() - here)
    new = sorted(r["name"] for r in results if r.get("comparison", {}).get("status") == "new")
    regressions = sorted({r["name"] for r in results for g in r.get("gates", [])
                          if g.get("kind") == "regression" and not g["passed"]})
    return {"baseline": baseline.path, "baseline_sha256": baseline.sha256,
            "baseline_timestamp": baseline.provenance.get("timestamp"),
            "compared": sum(1 for r in results if r.get("comparison", {}).get("status") == "compared"),
            "new": new, "missing": missing, "regressions": regressions}
