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

from .. import NicrobustError
from ..config.regression import Allowed
from ..config.thresholds import match_labels
from ..files import sha256_or_none
from ..metrics.registry import GATES
from ..record import means_of
from .gates import GateResult

class BaselineError(NicrobustError):
    category = "config error"


def match_key(params: dict, kind: str, mapping: dict[str, str] | None = None) -> str:
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
        return self.tests.get(match_key(result["params"], result.get("kind", "case")))

    def keys(self) -> set[str]:
        return set(self.tests)


def load_baseline(path: str, mapping: dict[str, str]) -> Baseline:
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
            tests[match_key(r["params"], r.get("kind", "case"), mapping)] = r
    return Baseline(os.path.abspath(path), sha256_or_none(path) or "", tests, doc.get("provenance", {}))


def regression_gates(result: dict, base: dict, mode: str, allowed: dict[str, Allowed]):
    """GateResults of the allowed changes in one mode (value = change, limit = allowed change), and the changes."""
    gates, changes = [], {}
    now, before = means_of(result, mode), means_of(base, mode)
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
    main = means_of(base, modes[-1])
    result["comparison"] = {"status": "compared", "baseline": baseline.path, "baseline_id": base.get("id"),
                            "baseline_mean": {k: v for k, v in main.items() if k in GATES},
                            "change": changes or _changes(result, base, modes[-1])}
    return gates


def _changes(result: dict, base: dict, mode: str) -> dict:
    """Change of every gateable mean, for the report, when no allowed change gates it."""
    now, before = means_of(result, mode), means_of(base, mode)
    return {m: float(now[m]) - float(before[m]) for m in GATES if m in now and m in before}


def run_comparison(results: list[dict], baseline: Baseline | None) -> dict | None:
    """The run-level comparison: new tests, baseline tests missing from this run, regressions."""
    if baseline is None:
        return None
    here = {match_key(r["params"], r.get("kind", "case")) for r in results if "params" in r}
    missing = sorted(baseline.tests[k].get("name", k) for k in baseline.keys() - here)
    new = sorted(r["name"] for r in results if r.get("comparison", {}).get("status") == "new")
    regressions = sorted({r["name"] for r in results for g in r.get("gates", [])
                          if g.get("kind") == "regression" and not g["passed"]})
    return {"baseline": baseline.path, "baseline_sha256": baseline.sha256,
            "baseline_timestamp": baseline.provenance.get("timestamp"),
            "compared": sum(1 for r in results if r.get("comparison", {}).get("status") == "compared"),
            "new": new, "missing": missing, "regressions": regressions}
