"""The terminal summary: the verdict line first and last, the gate table (failures first, then by
headroom, units, "over by" / "margin"), the closest transfer gate, what ran without a limit, the
comparison with a baseline, what was written and what went wrong.

``--nicrobust-summary`` picks the table's length: ``failed`` (failing tests only), ``worst`` (the
default: failures and the closest passes) or ``all`` (every test, transfer cells included).
"""

from __future__ import annotations

import math

from ..config.thresholds import match_labels
from ..names import BITSTREAM, CLASSICAL, attack_label, codec_of
from .curves import line as curve_line
from .summary import binding_gate, gate_phrase, gate_view, headroom, room_text, verdict_facts, verdict_line

CLOSEST = 10  # passing rows shown by --nicrobust-summary=worst


def _num(v, unit: str = "") -> str:
    if v is None:
        return ""
    return "NaN" if v != v else f"{v:.4g}{' ' + unit if unit else ''}"


def _sort_key(r: dict):
    gate = binding_gate(r)
    failed = r.get("outcome") in ("failed", "error")
    return (not failed, headroom(gate) if gate else math.inf, r["name"])


def _row(r: dict, show: dict, compared: bool) -> list[str]:
    p = r.get("params")
    outcome = {"failed": "FAIL", "error": "ERROR", "passed": "pass", "skipped": "no limit"}.get(r.get("outcome"), "")
    if p is None:  # a test whose worker crashed before it said what it was: its name
        test = [r["name"], "(its process ended)"] + ["" for k in ("dataset", "defense") if show[k]]
    else:
        test = [codec_of(p), attack_label(p) + (f" → {r['target']}" if r.get("kind") == "transfer" else "")]
        test += [p.get(k, "") for k in ("dataset", "defense") if show[k]]
    gate = binding_gate(r)
    if gate is None:
        cells = ["-", "", "", "error (see the test)" if outcome in ("FAIL", "ERROR") else "", ""]
        base = ["", ""]
    else:
        v = gate_view(r, gate)
        u = v["unit"]
        mode = f" [{v['mode']}]" if v["mode"] not in ("", "undefended", "transfer") else ""
        name = v["metric"] + mode + (" vs baseline" if v["kind"] == "regression" else "")
        limit = f"change ≤ {_num(v['allowed'], u)}" if v["kind"] == "regression" else _num(v["limit"], u)
        if v["value"] is None or v["value"] != v["value"]:
            how = "NaN"
        else:
            how = f"over by {_num(v['over'], u)}" if v["over"] > 0 else f"margin {_num(-v['over'], u)}"
        cells = [name, _num(v["value"], u), limit, how, room_text(v)]
        change = "" if v["change"] is None else f"{v['change']:+.3g}"
        base = [_num(v["baseline"], u), change]
    if compared and (r.get("comparison") or {}).get("status") in ("new", "not comparable"):
        base = [r["comparison"]["status"], ""]
    return [outcome, *test, *cells, *(base if compared else [])]


def gate_rows(results: list[dict], choice: str = "worst") -> tuple[list[str], list[bool], int]:
    """(lines, which lines fail, passing gated rows left out) of the gate table for ``--nicrobust-summary``
    ``choice``. Tests that had no limit are not counted here: they have a line of their own."""
    rows = sorted((r for r in results if r.get("kind") != BITSTREAM), key=_sort_key)  # crashed ones too: they failed
    if not rows:  # a run of bitstream tests only: their lines follow (bitstream_lines)
        return [], [], 0
    failing = [r for r in rows if r.get("outcome") in ("failed", "error")]
    if choice == "failed":
        shown = failing
    elif choice == "all":
        shown = rows
    else:  # failures, the closest passing cases and worst cases, the closest transfer cell
        passing = [r for r in rows if r not in failing and r.get("gates")]
        shown = failing + [r for r in passing if r.get("kind") != "transfer"][:CLOSEST]
        transfer = [r for r in passing if r.get("kind") == "transfer"][:1]
        shown += [r for r in transfer if r not in shown]
        shown.sort(key=_sort_key)
    show = {k: len({(r.get("params") or {}).get(k) for r in rows} - {None, ""}) > 1 for k in ("dataset", "defense")}
    compared = any(r.get("comparison") for r in rows)
    head = ["outcome", "codec", "attack"] + [k for k in ("dataset", "defense") if show[k]]
    head += ["binding gate", "mean", "limit", "over by / margin", "headroom"]
    head += ["baseline", "change"] if compared else []
    table = [head] + [_row(r, show, compared) for r in shown]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    fails = [False] + [r.get("outcome") in ("failed", "error") for r in shown]
    return lines, fails, sum(1 for r in rows if r not in shown and r.get("gates") and r.get("outcome") == "passed")


def gate_table(results: list[dict], choice: str = "worst") -> list[str]:
    """The gate table's lines (header first), as ``merge`` prints them."""
    return gate_rows(results, choice)[0]


def _label_sets(results: list[dict]):
    for r in results:
        p = r.get("params")
        if not p:
            continue
        modes = [g.get("mode") or "undefended" for g in r.get("gates", [])] or list(r.get("modes", {})) or ["transfer"]
        for mode in modes:
            yield match_labels(p, mode)


def bitstream_lines(results: list[dict]) -> list[tuple[str, bool]]:
    """(line, whether it is a failure) for the bitstream tests: counts, each finding and its file,
    the codecs without the stream API, and the cross-device check."""
    tests = [r for r in results if r.get("kind") == BITSTREAM]
    if not tests:
        return []
    failed = [r for r in tests if r.get("failures")]
    tried = sum(r.get("streams_tried") or 0 for r in tests)
    lines = [(f"bitstreams: {len(tests)} decoder(s), {tried} streams decoded, {len(failed)} with findings "
              "(docs/bitstreams.md)", bool(failed))]  # fmt: skip
    for r in failed:
        for f in r["failures"]:
            where = f.get("stream") or "attached to the test's Allure page"
            lines.append(
                (f"  {codec_of(r['params'])}: {f['property']}: {f['error'][:120]} ({f['size']} bytes: {where})", True)
            )
    apart = [codec_of(r["params"]) for r in tests if (r.get("bitstream") or {}).get("stream_api") is False]
    if apart:
        lines.append((f"  no stream API (not tested): {', '.join(apart)}", False))
    neural = [r for r in tests if r["params"]["codec"] not in CLASSICAL]  # Pillow's skip says nothing of a GPU
    skipped = {(r.get("cross_device") or {}).get("reason") for r in neural} - {None}
    checked = [r for r in tests if (r.get("cross_device") or {}).get("status") == "checked"]
    if checked:
        moved = [codec_of(r["params"]) for r in checked if not r["cross_device"].get("portable")]
        lines.append((f"  cross-device (GPU encode, CPU decode): {len(checked) - len(moved)} of {len(checked)} "
                      f"portable{'; not: ' + ', '.join(moved) if moved else ''}", bool(moved)))  # fmt: skip
    elif skipped:
        lines.append((f"  cross-device check skipped: {'; '.join(sorted(skipped))}", False))
    return lines


def unmatched_overrides(thresholds, results: list[dict]) -> list[str]:
    """Override tables of the user's thresholds file that matched no test. The shipped file's
    overrides (random-init codecs, transfer cells) are conditional by design: silent when they cannot apply."""
    return thresholds.unmatched(list(_label_sets(results)))


def _verdict(tr, results: list[dict]) -> None:
    status, line = verdict_line(verdict_facts(results))
    colour = {"failed": {"red": True, "bold": True}, "passed": {"green": True, "bold": True}}.get(
        status, {"yellow": True}
    )
    tr.write_line(f"nicrobust verdict: {line}", **colour)


def _comparison(tr, comparison: dict) -> None:
    tr.write_line(
        f"compared with {comparison['baseline']}: {comparison['compared']} test(s) matched, "
        f"{len(comparison['regressions'])} got worse than allowed"
    )
    new = comparison.get("new") or []
    if new:
        tr.write_line(f"{len(new)} test(s) not in the baseline:", yellow=True)
        for name in new[:10]:
            tr.write_line(f"  {name}")
        if len(new) > 10:
            tr.write_line(f"  … and {len(new) - 10} more (listed in the JSON's comparison.new)")
    missing = comparison.get("missing") or []
    if missing:
        tr.write_line(
            f"{len(missing)} baseline test(s) not in this run: {comparison.get('missing_reason', 'not run')}; "
            "listed in the JSON's comparison.missing",
            yellow=True,
        )
    for line in comparison.get("warnings") or []:
        tr.write_line(f"warning: {line}", yellow=True)


def write(tr, results: list[dict], writer) -> None:
    if not results:
        return
    from ..verdict.baseline import setup_warnings

    tr.section("nicrobust summary")
    _verdict(tr, results)
    stopped = getattr(writer, "stopped", None)
    if stopped:
        never = f"{stopped['not_run']} selected test(s) never ran, " if stopped.get("not_run") else ""
        tr.write_line(
            f"the run stopped early ({stopped['reason']}): {never}the verdict covers the {len(results)} that did; "
            'the results JSON says "complete": false',
            yellow=True,
        )
    choice = tr.config.getoption("nicrobust_summary", "worst") or "worst"
    lines, fails, left_out = gate_rows(results, choice)
    for line, failed in zip(lines, fails):
        tr.write_line(line, **({"red": True} if failed else {}))
    if left_out:
        tr.write_line(f"… {left_out} more test(s) within their limits: --nicrobust-summary=all lists every test")
    transfer = [r for r in results if r.get("kind") == "transfer"]
    if transfer:
        failed = sum(1 for r in transfer if r.get("outcome") == "failed")
        gated = [r for r in transfer if r.get("gates")]
        closest = ""
        if gated:
            r = min(gated, key=lambda r: headroom(binding_gate(r)))
            v = gate_view(r, binding_gate(r))
            closest = (
                f"; {'worst' if v['over'] > 0 else 'closest'}: {gate_phrase(v)} (headroom {room_text(v)}) "
                f"in {r['name']}"
            )
        tr.write_line(
            f"transfer: {len(transfer)} cells, {failed} failed{closest} (matrices in the JSON and the report)",
            **({"red": True} if failed else {}),
        )
    for r in results:
        if r.get("kind") == "curve" and r.get("points"):
            tr.write_line(curve_line(r))
    for line in warning_lines(results):
        tr.write_line(line, yellow=True)
    for line, failed in bitstream_lines(results):
        tr.write_line(line, **({"red": True} if failed else {}))
    ungated = sum(1 for r in results if r.get("outcome") == "skipped" and r.get("kind") != BITSTREAM)
    if ungated:
        tr.write_line(
            f"{ungated} test(s) measured with no limit in {writer.thresholds.path} (skipped, not passed)", yellow=True
        )
    seed = f"; seed {tr.config.getoption('nicrobust_seed')}"
    if writer.thresholds.is_default:
        tr.write_line(
            f"no thresholds.toml in the rootdir: the plugin's default limits applied ({writer.thresholds.path}){seed}",
            yellow=True,
        )
    else:
        how = "extends the plugin's limits" if writer.thresholds.inherited else "extends = false: its limits alone"
        tr.write_line(f"thresholds {writer.thresholds.path} ({how}){seed}")
    if writer.thresholds.dropped:
        tr.write_line(
            f"{writer.thresholds.path} turns off shipped gate(s): {', '.join(writer.thresholds.dropped)}", yellow=True
        )
    if writer.thresholds.not_computed:
        tr.write_line(
            f"not gated in this run (not computed, --nicrobust-metrics): {', '.join(writer.thresholds.not_computed)}",
            yellow=True,
        )
    for source in unmatched_overrides(writer.thresholds, results):
        tr.write_line(f"warning: {source} matched no test in this run", yellow=True)
    comparison = writer.extras.get("comparison")
    if comparison:
        if hasattr(writer, "provenance"):
            setup_warnings(comparison, writer.provenance(results))
        _comparison(tr, comparison)
    for problem in writer.problems:
        tr.write_line(f"warning: {problem}", yellow=True)
    for path in writer.written:
        tr.write_line(f"written: {path}")
    _verdict(tr, results)


def warning_lines(results: list[dict]) -> list[str]:
    """The run's gradient-masking suspicions (each line names the codec, the check and the numbers) and
    a count of the tests whose attack had not converged, with the option that makes either a failure."""
    suspected = [item for r in results for item in r.get("masking") or []]
    late = [r["name"] for r in results if any(w.startswith("attack not converged") for w in r.get("warnings") or [])]
    lines = [f"warning: {item['line']}" for item in suspected]
    if suspected:
        lines.append("  (what a pass means and how to read this: docs/method.md; --nicrobust-masking=fail fails them)")
    if late:
        shown = ", ".join(late[:5]) + (f", … ({len(late) - 5} more)" if len(late) > 5 else "")
        lines.append(
            f"warning: {len(late)} test(s) whose attack had not converged (its objective still rose in the last "
            f"quarter of its steps; more steps may find more): {shown}; --nicrobust-convergence=fail fails them"
        )
    return lines
