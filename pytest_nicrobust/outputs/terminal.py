"""The terminal summary: the gate table, what ran without a limit, what was written, what went wrong."""

from __future__ import annotations

import math

from ..config.thresholds import match_labels
from ..names import attack_label, codec_of, mode_suffix
from .summary import binding_gate, headroom


def _row(r: dict) -> list[str]:
    p = r["params"]
    gate = binding_gate(r)
    if gate is None:
        cells = ["-", "error" if r.get("outcome") in ("failed", "error") else "no limit", "", ""]
    else:
        h = headroom(gate)
        mode = mode_suffix(gate.get("mode") or "") if gate.get("mode") != "transfer" else ""
        cells = [f"{gate['metric']}{mode}", f"{gate['value']:.4g}", f"{gate['limit']:g}",
                 f"{100 * h:.0f}%" if math.isfinite(h) else "NaN"]
    comparison = r.get("comparison") or {}
    change = (comparison.get("change") or {}).get(gate["metric"].removeprefix("transfer_")) if gate else None
    versus = "new" if comparison.get("status") == "new" else "" if change is None else f"{change:+.3g}"
    return [codec_of(p), attack_label(p) + (f" → {r['target']}" if r.get("kind") == "transfer" else ""),
            p["dataset"], p.get("defense", ""), *cells, versus, (r.get("outcome") or "").upper()]


def gate_table(results: list[dict], include_transfer: bool = False) -> list[str]:
    rows = [r for r in results if "params" in r and (r.get("kind") != "transfer" or include_transfer)]
    rows.sort(key=lambda r: (codec_of(r["params"]), r.get("kind") != "worst-case", r["name"]))
    head = ["codec", "attack", "dataset", "defense", "binding gate", "mean", "limit", "headroom", "vs baseline", "outcome"]
    table = [head] + [_row(r) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]


def _label_sets(results: list[dict]):
    for r in results:
        p = r.get("params")
        if not p:
            continue
        modes = [g.get("mode") or "undefended" for g in r.get("gates", [])] or list(r.get("modes", {})) or ["transfer"]
        for mode in modes:
            yield match_labels(p, mode)


def write(tr, results: list[dict], writer) -> None:
    if not results:
        return
    tr.section("nicrobust summary")
    transfer = [r for r in results if r.get("kind") == "transfer"]
    for line in gate_table(results):
        tr.write_line(line)
    if transfer:
        failed = sum(1 for r in transfer if r.get("outcome") == "failed")
        tr.write_line(f"transfer: {len(transfer)} tests, {failed} failed (matrices in the JSON and the report)")
    ungated = sum(1 for r in results if r.get("outcome") == "skipped")
    if ungated:
        tr.write_line(f"{ungated} test(s) measured with no limit in {writer.thresholds.path} (skipped, not passed)",
                      yellow=True)
    if writer.thresholds.is_default:
        tr.write_line(f"no thresholds.toml in the rootdir: the plugin's default limits applied ({writer.thresholds.path})",
                      yellow=True)
    for source in writer.thresholds.unmatched(list(_label_sets(results))):
        tr.write_line(f"warning: {source} matched no test in this run", yellow=True)
    comparison = writer.extras.get("comparison")
    if comparison:
        tr.write_line(f"compared with {comparison['baseline']}: {comparison['compared']} test(s) matched, "
                      f"{len(comparison['regressions'])} got worse than allowed")
        for what in ("new", "missing"):
            if comparison[what]:
                where = "not in the baseline" if what == "new" else "in the baseline, not in this run"
                tr.write_line(f"{len(comparison[what])} test(s) {where}:", yellow=True)
                for name in comparison[what]:
                    tr.write_line(f"  {name}")
    for problem in writer.problems:
        tr.write_line(f"warning: {problem}", yellow=True)
    for path in writer.written:
        tr.write_line(f"written: {path}")
