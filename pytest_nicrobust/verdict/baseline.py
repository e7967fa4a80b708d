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
from dataclasses import dataclass, field

from .. import NicrobustError
from ..config.regression import Allowed
from ..config.thresholds import match_labels
from ..files import sha256_or_none
from ..metrics.registry import GATES
from ..names import mode_suffix
from ..record import from_json, means_of
from .gates import GateResult


class BaselineError(NicrobustError):
    category = "config error"


# Formats of --nicrobust-json this module reads (docs/results-json.md has the changelog).
READABLE_FORMATS = (2, 3)


def allowed_change(allow: Allowed, baseline: float) -> float:
    """The allowed change in the metric's unit: absolute, or N% of |baseline| but at least the gate's
    floor (:class:`~pytest_nicrobust.metrics.registry.Gate`: "N%" of a near-zero baseline would allow
    almost nothing; docs/thresholds.md)."""
    limit = allow.absolute(baseline)
    return max(limit, GATES[allow.metric].floor) if allow.relative else limit


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
    warnings: list = field(default_factory=list)  # one line each, shown in the terminal and the JSON
    unmeasured: dict = field(default_factory=dict)  # key -> a record without means (it failed before measuring)

    def find_unmeasured(self, result: dict) -> dict | None:
        return self.unmeasured.get(match_key(result["params"], result.get("kind", "case")))

    def find(self, result: dict) -> dict | None:
        return self.tests.get(match_key(result["params"], result.get("kind", "case")))

    def keys(self) -> set[str]:
        return set(self.tests)


def _headline_means(r: dict):
    """The means a baseline record is compared on (top-level, else its modes'), or None."""
    if isinstance(r.get("mean"), dict):
        return r["mean"]
    modes = r.get("modes")
    return (
        next((b.get("mean") for b in modes.values() if isinstance(b, dict)), None) if isinstance(modes, dict) else None
    )


def _check_record(path: str, i: int, r) -> None:
    """One line naming the record and key that makes a baseline unreadable."""
    where = f"--nicrobust-compare {path}: tests[{i}]"
    if not isinstance(r, dict):
        raise BaselineError(f"{where}: expected a test record (an object), got {type(r).__name__}")
    params = r.get("params")
    if params is None:
        return  # a crashed test: nothing to compare, skipped
    if (
        not isinstance(params, dict)
        or "codec" not in params
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
    ):
        raise BaselineError(f"{where}.params: expected an object of strings with a codec, got {params!r:.80}")
    modes = r.get("modes") or {}
    if not isinstance(modes, dict) or not all(isinstance(b, dict) for b in modes.values()):
        raise BaselineError(f"{where}.modes: expected an object of {{mode: {{per_image, mean}}}}, got {modes!r:.80}")
    blocks = [("mean", r.get("mean"))] + [(f"modes.{m}.mean", b.get("mean")) for m, b in modes.items()]
    for key, block in blocks:
        if block is None:
            continue
        if not isinstance(block, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in block.values()
        ):
            raise BaselineError(f"{where}.{key}: expected an object of numbers, got {block!r:.80}")


def load_baseline(path: str, mapping: dict[str, str]) -> Baseline:
    """Read and check a saved run: what cannot be compared is refused (one line), the rest warned about."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise BaselineError(f"--nicrobust-compare {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"--nicrobust-compare {path}: not a results JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise BaselineError(f"--nicrobust-compare {path}: not a --nicrobust-json file (no 'tests' list)")
    fmt = doc.get("format")
    if fmt not in READABLE_FORMATS:
        raise BaselineError(
            f"--nicrobust-compare {path}: format {fmt!r}, this plugin reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))} (docs/results-json.md)"
        )
    prov = doc.get("provenance")
    if not isinstance(prov, dict):
        raise BaselineError(f"--nicrobust-compare {path}: provenance: expected an object, got {type(prov).__name__}")
    tests: dict = {}
    unmeasured: dict = {}
    for i, r in enumerate(doc["tests"]):
        _check_record(path, i, r)
        if isinstance(r, dict) and "params" in r:
            key = match_key(r["params"], r.get("kind", "case"), mapping)
            (tests if _headline_means(from_json(r)) else unmeasured)[key] = r
    if not tests:
        raise BaselineError(f"--nicrobust-compare {path}: no test with measured means to compare with")
    name = os.path.basename(path)
    warnings = []
    if unmeasured:
        first = next(iter(unmeasured.values()))
        warnings.append(
            f"baseline {name}: {len(unmeasured)} test(s) have no means (they failed before measuring), so they are "
            f"not compared: e.g. {first.get('name', first.get('id'))}"
        )
    nan = [
        (r.get("name", r.get("id")), m)
        for r in tests.values()
        for m, v in _headline_means(r).items()
        if m in GATES and isinstance(v, float) and not math.isfinite(v)
    ]
    if nan:
        warnings.append(
            f"baseline {name}: {len(nan)} mean(s) are NaN (their codec produced NaN), not compared: e.g. "
            f"{nan[0][1]} of {nan[0][0]}"
        )
    if doc.get("complete") is not True:
        warnings.append(
            f"baseline {os.path.basename(path)} is a partial run (complete: {doc.get('complete')!r}): "
            f"{len(tests)} test(s) to compare with; the run that wrote it did not finish"
        )
    return Baseline(os.path.abspath(path), sha256_or_none(path) or "", tests, prov, warnings, unmeasured)


def setup_of(prov: dict) -> dict:
    """What of a run's provenance decides whether its numbers compare: seed, suites, thresholds."""
    return {
        "seed": prov.get("seed"),
        "suites": {os.path.basename(p): h for p, h in (prov.get("suites") or {}).items()},
        "thresholds_sha256": (prov.get("thresholds") or {}).get("sha256"),
    }


def setup_warnings(comparison: dict | None, prov: dict | None) -> None:
    """Append one line per set-up difference between the baseline and this run to ``comparison["warnings"]``
    (seed, a suite's or the thresholds file's SHA-256); once per comparison."""
    if not comparison or not prov or comparison.get("setup_checked"):
        return
    before, now, lines = comparison.get("baseline_setup") or {}, setup_of(prov), comparison.setdefault("warnings", [])
    comparison["setup_checked"] = True
    if before.get("seed") != now["seed"]:
        lines.append(
            f"the baseline ran with --nicrobust-seed {before.get('seed')}, this run with {now['seed']}: "
            "attack starts and defense draws differ"
        )
    for name, h in now["suites"].items():
        old = (before.get("suites") or {}).get(name)
        if old and old != h:
            lines.append(f"suite {name} changed since the baseline (sha256 {str(old)[:12]} → {str(h)[:12]})")
    t_old, t_new = before.get("thresholds_sha256"), now["thresholds_sha256"]
    if t_old and t_new and t_old != t_new:
        lines.append(
            f"the thresholds file changed since the baseline (sha256 {t_old[:12]} → {t_new[:12]}): "
            "limits may differ; changes are measured the same way"
        )


def _images(r: dict) -> list:
    rows = r.get("per_image")
    if rows is None and isinstance(r.get("modes"), dict):
        rows = next((b.get("per_image") for b in r["modes"].values() if isinstance(b, dict)), None)
    return [row.get("image") for row in rows or [] if isinstance(row, dict)]


def incomparable(result: dict, base: dict) -> str | None:
    """Why this test cannot be compared with its baseline record (other images or crop), or None."""
    now, before = _images(result), _images(base)
    if before and now and sorted(now) != sorted(before):
        return (
            f"other images: baseline {len(before)} ({', '.join(map(str, before[:3]))}{', …' if len(before) > 3 else ''}), "
            f"this run {len(now)} ({', '.join(map(str, now[:3]))}{', …' if len(now) > 3 else ''})"
        )
    if "crop" in base and "crop" in result and base["crop"] != result["crop"]:
        return f"other crop: baseline {base['crop']}, this run {result['crop']}"
    return None


def regression_gates(result: dict, base: dict, mode: str, allowed: dict[str, Allowed], nan: list | None = None):
    """GateResults of the allowed changes in one mode (value = change, limit = allowed change), and the
    changes. A baseline value that is NaN gates nothing: its metric is appended to ``nan``."""
    gates, changes = [], {}
    now, before = means_of(result, mode), means_of(base, mode) or (_headline_means(base) if mode == "transfer" else {})
    for name, allow in allowed.items():
        metric = name.removeprefix("transfer_")  # delta_psnr applies to every test, transfer_* to transfer cells
        if metric not in now or metric not in before or (name.startswith("transfer_") and mode != "transfer"):
            continue
        if not math.isfinite(float(before[metric])):  # the baseline's codec broke there: nothing to compare with
            if nan is not None:
                nan.append(metric + mode_suffix(mode))
            continue
        change = float(now[metric]) - float(before[metric])
        limit = allowed_change(allow, float(before[metric]))
        floor = " (floor)" if allow.relative and limit > allow.absolute(float(before[metric])) else ""
        changes[metric] = change
        gates.append(
            GateResult(
                name,
                change,
                limit,
                f"{allow.source}: allowed {allow.text()}{floor}",
                not math.isnan(change) and change <= limit,
                mode,
                kind="regression",
                baseline=float(before[metric]),
                current=float(now[metric]),
            )
        )
    return gates, changes


def _not_comparable(result: dict, baseline: Baseline, base: dict, reason: str) -> list:
    """Record why ``result`` is not compared with its baseline record ``base``; no gate."""
    result["comparison"] = {
        "status": "not comparable",
        "baseline": baseline.path,
        "baseline_id": base.get("id"),
        "reason": reason,
    }
    return []


def compare(result: dict, modes, thresholds, baseline: Baseline | None, cli: dict[str, Allowed]) -> list:
    """Regression gates of a test against its baseline; records ``result["comparison"]``."""
    if baseline is None:
        return []
    base = baseline.find(result)
    if base is None:
        gone = baseline.find_unmeasured(result)
        if gone is not None:
            error = f": {str(gone['error'])[:160]}" if gone.get("error") else ""
            return _not_comparable(
                result, baseline, gone, f"the baseline's record has no means (it failed before measuring{error})"
            )
        result["comparison"] = {"status": "new", "baseline": baseline.path}
        return []
    reason = incomparable(result, base)
    if reason:
        return _not_comparable(result, baseline, base, reason)
    gates, changes = [], {}
    nan: list[str] = []
    for mode in modes:
        allowed = {**thresholds.regression_for(match_labels(result["params"], mode)), **cli}
        g, c = regression_gates(result, base, mode, allowed, nan)
        gates += g
        changes.update({k if mode == modes[-1] else f"{k} [{mode}]": v for k, v in c.items()})
    if nan and not gates:
        why = f"the baseline's {', '.join(nan)} is NaN (its codec produced NaN): nothing to compare with"
        return _not_comparable(result, baseline, base, why)
    main = means_of(base, modes[-1]) or _headline_means(base) or {}
    result["comparison"] = {
        "status": "compared",
        "baseline": baseline.path,
        "baseline_id": base.get("id"),
        "baseline_mean": {k: v for k, v in main.items() if k in GATES},
        "change": changes or _changes(result, base, modes[-1]),
    }
    if nan:
        result["comparison"]["reason"] = (
            f"the baseline's {', '.join(nan)} is NaN (its codec produced NaN): not compared"
        )
    if base.get("seed") is not None and str(base.get("seed")) != str(result.get("seed")):
        result["comparison"]["seed_differs"] = True
    return gates


def _changes(result: dict, base: dict, mode: str) -> dict:
    """Change of every gateable mean, for the report, when no allowed change gates it."""
    now, before = means_of(result, mode), means_of(base, mode) or _headline_means(base) or {}
    return {m: float(now[m]) - float(before[m]) for m in GATES if m in now and m in before}


MISSING_REASON = (
    "not run here: deselected (-k, -m, --nicrobust-shard, --nicrobust-no-transfer, heavy) or gone from the suite"
)


def run_comparison(results: list[dict], baseline: Baseline | None, prov: dict | None = None) -> dict | None:
    """The run-level comparison: new tests, baseline tests missing from this run, regressions, warnings
    (the set-up ones when ``prov`` is given, else by :func:`setup_warnings` once it is known)."""
    if baseline is None:
        return None
    here = {match_key(r["params"], r.get("kind", "case")) for r in results if "params" in r}
    missing = sorted(baseline.tests[k].get("name", k) for k in baseline.keys() - here)
    new = sorted(r["name"] for r in results if r.get("comparison", {}).get("status") == "new")
    regressions = sorted(
        {r["name"] for r in results for g in r.get("gates", []) if g.get("kind") == "regression" and not g["passed"]}
    )
    apart = [
        {"test": r["name"], "reason": r["comparison"]["reason"]}
        for r in results
        if r.get("comparison", {}).get("status") == "not comparable"
    ]
    warnings = list(baseline.warnings)
    seeds = sum(1 for r in results if r.get("comparison", {}).get("seed_differs"))
    if seeds and baseline.provenance.get("seed") == (prov or {}).get("seed", baseline.provenance.get("seed")):
        warnings.append(f"{seeds} test(s) ran with another seed than in the baseline: attack starts differ")
    if apart:
        warnings.append(
            f"{len(apart)} test(s) not compared, their set-up differs from the baseline "
            f"(e.g. {apart[0]['test']}: {apart[0]['reason']}); listed in the JSON"
        )
    out = {
        "baseline": baseline.path,
        "baseline_sha256": baseline.sha256,
        "baseline_timestamp": baseline.provenance.get("timestamp"),
        "compared": sum(1 for r in results if r.get("comparison", {}).get("status") == "compared"),
        "new": new,
        "missing": missing,
        "missing_reason": MISSING_REASON,
        "not_comparable": apart,
        "regressions": regressions,
        "warnings": warnings,
        "baseline_setup": setup_of(baseline.provenance),
    }
    setup_warnings(out, prov)
    return out
