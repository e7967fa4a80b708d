"""Run-level summaries built on the controller: the verdict, the gate matrix, the score card.

* verdict: counts (failed, regressions, errors, passed, ungated) and the run's worst gate, in one
  line that the terminal prints first and last and Allure's run summary carries;
* a gate as every output shows it (:func:`gate_view`): its ``kind`` (limit or regression), this
  run's mean, the baseline's value and the change kept apart, the limit or the allowed change;
* gate matrix: one row per (codec[q], dataset, defense), one column per attack (worst case
  first); each cell the test's binding gate (the metric with the least headroom): its mean,
  its limit and the headroom (limit − mean) / |limit|;
* score card per codec[q]: outcome counts and the worst case as the headline numbers;
* defense table: ΔPSNR undefended / non-adaptive / adaptive and the defense's clean cost.
"""

from __future__ import annotations

import html
import math

from ..metrics.registry import unit
from ..names import BITSTREAM, WORST_CASE, attack_label, codec_of, mode_suffix
from ..verdict.gates import headroom as _headroom

HEADLINE_METRICS = ("delta_psnr", "delta_msssim", "delta_vmaf", "bitrate_increase")


def headroom(gate: dict) -> float:
    """Headroom of a recorded gate (see :func:`pytest_nicrobust.verdict.gates.headroom`)."""
    return _headroom(gate["value"], gate["limit"], gate.get("kind", "limit"))


def binding_gate(result: dict) -> dict | None:
    gates = result.get("gates") or []
    return min(gates, key=headroom) if gates else None


def gate_view(result: dict, gate: dict) -> dict:
    """A gate as every output shows it, whatever its kind: the current mean, the baseline's and the
    change kept apart. ``kind`` "limit": ``limit`` is the limit on the mean; "regression": ``allowed``
    is the allowed change (``limit`` is None). ``over`` > 0: how far past; < 0: the margin left."""
    metric = gate["metric"]
    comparison = result.get("comparison") or {}
    base_metric = metric.removeprefix("transfer_")
    view = {
        "kind": gate.get("kind", "limit"),
        "metric": metric,
        "mode": gate.get("mode") or "",
        "unit": unit(metric),
        "headroom": headroom(gate),
        "over": gate["limit"] - gate["value"] if gate.get("kind") == "minimum" else gate["value"] - gate["limit"],
        "passed": gate["passed"],
        "source": gate.get("source", ""),
    }
    if view["kind"] == "regression":
        view.update(
            value=gate.get("current"),
            limit=None,
            allowed=gate["limit"],
            baseline=gate.get("baseline"),
            change=gate["value"],
        )
    else:
        change = (comparison.get("change") or {}).get(base_metric)
        before = (comparison.get("baseline_mean") or {}).get(base_metric)
        view.update(value=gate["value"], limit=gate["limit"], allowed=None, baseline=before, change=change)
    return view


def room_text(view: dict) -> str:
    """The headroom as a percentage; a limit (or allowance) of 0 has none: "limit 0"."""
    if not math.isfinite(view["headroom"]):
        return "NaN"
    edge = view["allowed"] if view["kind"] == "regression" else view["limit"]
    return "limit 0" if edge is not None and abs(edge) <= 1e-12 else f"{100 * view['headroom']:.0f} %"


def _fmt_num(v, u: str = "") -> str:
    return "NaN" if v != v else f"{v:.4g}{' ' + u if u else ''}"


def gate_phrase(view: dict) -> str:
    """``delta_psnr 7.31 dB > limit 6 dB, over by 1.31 dB``; ``delta_psnr 3.18 dB (baseline 2.18 dB,
    change +1 dB > allowed 0.3 dB), over by 0.7 dB`` for a regression."""
    u, mode = view["unit"], mode_suffix(view["mode"]) if view["mode"] != "transfer" else ""
    name = f"{view['metric']}{mode}"
    if view["value"] is None or view["value"] != view["value"]:
        return f"{name} NaN"
    how = f"over by {_fmt_num(view['over'], u)}" if view["over"] > 0 else f"margin {_fmt_num(-view['over'], u)}"
    if view["kind"] == "minimum":  # a budget sweep's ε* against its lowest allowed budget
        short = f"short by {_fmt_num(view['over'])}" if view["over"] > 0 else f"margin {_fmt_num(-view['over'])}"
        return f"ε* {_fmt_num(view['value'])} {'<' if view['over'] > 0 else '>='} minimum {view['limit']:g}, {short}"
    if view["kind"] == "regression":
        sign = ">" if view["over"] > 0 else "<="
        return (
            f"{name} {_fmt_num(view['value'], u)} (baseline {_fmt_num(view['baseline'], u)}, change "
            f"{view['change']:+.3g} {sign} allowed {view['allowed']:.3g}{' ' + u if u else ''}), {how}"
        )
    sign = ">" if view["over"] > 0 else "<="
    return f"{name} {_fmt_num(view['value'], u)} {sign} limit {view['limit']:g}{' ' + u if u else ''}, {how}"


def verdict_facts(results: list[dict]) -> dict:
    """Counts and the worst gate of the run: what the verdict line says."""
    gated = [r for r in results if r.get("gates")]
    failed = [r for r in results if r.get("outcome") in ("failed", "error")]
    facts = {
        "tests": len(results),
        "failed": len(failed),
        "passed": sum(1 for r in results if r.get("outcome") == "passed"),
        "ungated": sum(1 for r in results if r.get("outcome") == "skipped" and r.get("kind") != BITSTREAM),
        "errors": sum(1 for r in failed if not r.get("gates") and not r.get("failures")),
        "decoders": sum(1 for r in failed if r.get("failures")),  # bitstream tests with findings
        "untested_decoders": sum(1 for r in results if (r.get("bitstream") or {}).get("stream_api") is False),
        "regressions": sum(
            1 for r in results if any(g.get("kind") == "regression" and not g["passed"] for g in r.get("gates", []))
        ),
        "worst": None,
        # codecs a worst case suspects of gradient masking; tests whose attack had not converged
        "masking": sorted({item["codec"] for r in results for item in r.get("masking") or []}),
        "not_converged": sum(
            1 for r in results if any(w.startswith("attack not converged") for w in r.get("warnings") or [])
        ),
    }
    if gated:
        r = min(gated, key=lambda r: headroom(binding_gate(r)))
        facts["worst"] = {"test": r["name"], **gate_view(r, binding_gate(r))}
    return facts


def verdict_line(facts: dict) -> tuple[str, str]:
    """(status, line): ``FAILED: 3 failed (1 regression), 54 passed, 3 without a limit; worst: …``."""
    status = "failed" if facts["failed"] else "passed" if facts["passed"] else "skipped"
    word = {"failed": "FAILED", "passed": "PASSED", "skipped": "NOTHING GATED"}[status]
    counts = f"{facts['failed']} failed"
    extra = [f"{facts['regressions']} regression(s)"] if facts["regressions"] else []
    extra += [f"{facts['errors']} error(s)"] if facts["errors"] else []
    extra += [f"{facts['decoders']} decoder(s) with findings"] if facts.get("decoders") else []
    counts += f" ({', '.join(extra)})" if extra else ""
    counts += f", {facts['passed']} passed, {facts['ungated']} without a limit"
    if facts.get("untested_decoders"):
        counts += f", {facts['untested_decoders']} decoder(s) without the stream API"
    w = facts["worst"]
    where = ""
    if w:
        where = (
            f"; {'worst' if w['over'] > 0 else 'closest'}: {gate_phrase(w)} (headroom {room_text(w)}) in {w['test']}"
        )
    warned = f"; gradient masking suspected on {', '.join(facts['masking'])}" if facts.get("masking") else ""
    if facts.get("not_converged"):
        warned += f"; {facts['not_converged']} test(s) whose attack had not converged"
    return status, f"{word}: {counts}{where}{warned}"


def verdict(results: list[dict]) -> tuple[str, str]:
    """(Allure status, one line) of the whole run: ``verdict: FAILED: …`` (Allure's "run verdict" category)."""
    status, line = verdict_line(verdict_facts(results))
    return status, "verdict: " + line


def gate_matrix(results: list[dict]) -> dict:
    """{"rows": [...], "columns": [...], "cells": {row: {column: cell}}} over case and worst-case tests."""
    cells: dict = {}
    columns: list = []
    for r in results:
        if r.get("kind") not in ("case", "worst-case") or "params" not in r:
            continue
        p = r["params"]
        row, col = f"{codec_of(p)} · {p['dataset']} · {p['defense']}", attack_label(p)
        gate = binding_gate(r)
        cell = {"test": r["name"], "outcome": r.get("outcome")}
        if gate:
            view = gate_view(r, gate)
            cell.update({k: view[k] for k in ("kind", "metric", "mode", "value", "limit", "allowed", "headroom")})
            cell.update({k: view[k] for k in ("baseline", "change") if view[k] is not None})
        cells.setdefault(row, {})[col] = cell
        if col not in columns:
            columns.append(col)
    columns.sort(key=lambda c: (c != WORST_CASE, c))
    return {"rows": sorted(cells), "columns": columns, "cells": cells}


def score_card(results: list[dict]) -> list[dict]:
    """Per codec[q]: outcome counts and, as the headline, the worst case's means."""
    cards: dict = {}
    for r in results:
        if r.get("kind") not in ("case", "worst-case") or "params" not in r:
            continue
        c = cards.setdefault(
            codec_of(r["params"]),
            {"codec": codec_of(r["params"]), "passed": 0, "failed": 0, "ungated": 0, "worst_case": []},
        )
        c[{"passed": "passed", "skipped": "ungated"}.get(r.get("outcome"), "failed")] += 1
        if r["kind"] == "worst-case":
            mean = r.get("mean") or {}
            c["worst_case"].append(
                {
                    "dataset": r["params"]["dataset"],
                    "defense": r["params"]["defense"],
                    "outcome": r.get("outcome"),
                    "test": r["name"],
                    **{m: mean[m] for m in HEADLINE_METRICS if m in mean},
                }
            )
    return list(cards.values())


def defense_table(results: list[dict]) -> list[dict]:
    """Per defended test: ΔPSNR undefended / non-adaptive / adaptive and the clean cost."""
    rows = []
    for r in results:
        if r.get("kind") != "case" or "defense" not in r or "modes" not in r:
            continue
        m = {mode: block.get("mean", {}) for mode, block in r["modes"].items()}
        cost = r["defense"].get("cost", {})
        rows.append(
            {
                "codec": codec_of(r["params"]),
                "attack": attack_label(r["params"]),
                "defense": r["params"]["defense"],
                "delta_psnr_undefended": m["undefended"].get("delta_psnr"),
                "delta_psnr_non_adaptive": m["non-adaptive"].get("delta_psnr"),
                "delta_psnr_adaptive": m["adaptive"].get("delta_psnr"),
                "bitrate_increase_adaptive": m["adaptive"].get("bitrate_increase"),
                "cost_psnr": cost.get("cost_psnr"),
                "cost_bpp": cost.get("cost_bpp"),
            }
        )
    return rows


def build(results: list[dict]) -> dict:
    facts = verdict_facts(results)
    status, line = verdict_line(facts)
    return {
        "verdict": status,
        "verdict_line": "verdict: " + line,
        "counts": {k: v for k, v in facts.items() if k != "worst"},
        "worst": facts["worst"],
        "gate_matrix": gate_matrix(results),
        "score_card": score_card(results),
        "defenses": defense_table(results),
        "ungated": facts["ungated"],
    }


# -- HTML -----------------------------------------------------------------------------


def _fmt(v) -> str:
    return html.escape(v) if isinstance(v, str) else ("" if v is None else f"{v:.3g}")


def colour(h: float | None) -> str:
    """Cell background by headroom: red over the limit, orange < 20 %, yellow < 50 %, green above."""
    if h is None:
        return "#e0e0e0"
    return "#f4a3a3" if h < 0 else "#ffc98b" if h < 0.2 else "#fff1a8" if h < 0.5 else "#b9e6b3"


def matrix_cell_lines(cell: dict) -> list[str]:
    """A gate-matrix cell as lines of plain text: the binding gate, mean / limit, the headroom (and the
    baseline); the HTML page and the CI job summary show the same lines."""
    if "metric" not in cell:
        return ["error (see the test)" if cell.get("outcome") in ("failed", "error") else "no limit"]
    u = unit(cell["metric"])
    name = f"{cell['metric']}{mode_suffix(cell['mode'])}"
    value = cell.get("value")
    if not math.isfinite(cell["headroom"]) or value is None:
        return [name, "NaN"]
    edge = cell["allowed"] if cell.get("kind") == "regression" else cell["limit"]
    room = "limit 0" if abs(edge) <= 1e-12 else f"headroom {100 * cell['headroom']:.0f} %"  # no share of 0
    if cell.get("kind") == "regression":  # the mean, the baseline's and the change, each named
        return [
            f"{name} vs baseline",
            f"{value:.3g} {u} (baseline {cell['baseline']:.3g})",
            f"change {cell['change']:+.3g}, allowed +{cell['allowed']:.3g}",
            room,
        ]
    lines = [name, f"{value:.3g} / {cell['limit']:g} {u}", room]
    if "change" in cell:
        lines.append(
            f"baseline {cell['baseline']:.3g}, change {cell['change']:+.3g}"
            if "baseline" in cell
            else f"change {cell['change']:+.3g}"
        )
    return lines


def _cell_html(cell: dict | None) -> str:
    if cell is None:
        return "<td></td>"
    lines = [html.escape(line) for line in matrix_cell_lines(cell)]
    if len(lines) > 1:
        lines[1] = f"<b>{lines[1]}</b>"
    failed = cell.get("outcome") in ("failed", "error")
    h = cell["headroom"] if "metric" in cell else (-1.0 if failed else None)
    return f"<td style='background:{colour(h)}' title='{html.escape(cell['test'])}'>{'<br>'.join(lines)}</td>"


def matrix_html(matrix: dict) -> str:
    if not matrix.get("rows"):
        return "<p>no gated tests</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in matrix["columns"])
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(row)}</th>"
        + "".join(_cell_html(matrix["cells"][row].get(c)) for c in matrix["columns"])
        + "</tr>"
        for row in matrix["rows"]
    )
    return f"<table border=1 cellpadding=4 style='border-collapse:collapse;font:12px sans-serif'><tr><th></th>{head}</tr>{body}</table>"


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table border=1 cellpadding=3 style='border-collapse:collapse;font:12px sans-serif'><tr>{head}</tr>{body}</table>"


SQUARES = (("🟥", "over the limit"), ("🟧", "< 20 % headroom"), ("🟨", "< 50 %"), ("🟩", "≥ 50 %"), ("⬜", "no limit"))


def square(h: float | None) -> str:
    """A headroom's colour as a character, for pages without styles (Allure's descriptions, Markdown)."""
    if h is None:
        return SQUARES[4][0]
    return SQUARES[0][0] if h < 0 else SQUARES[1][0] if h < 0.2 else SQUARES[2][0] if h < 0.5 else SQUARES[3][0]


def cell_square(cell: dict) -> str:
    if "metric" in cell:
        return square(cell["headroom"])
    return SQUARES[0][0] if cell.get("outcome") in ("failed", "error") else SQUARES[4][0]


def _matrix_plain_html(matrix: dict) -> str:
    """The gate matrix as a bare table (Allure strips styles from descriptions: the colours are squares)."""
    if not matrix.get("rows"):
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in matrix["columns"])
    rows = ""
    for row in matrix["rows"]:
        cells = ""
        for column in matrix["columns"]:
            cell = matrix["cells"][row].get(column)
            text = (
                "" if cell is None else cell_square(cell) + " " + "<br>".join(map(html.escape, matrix_cell_lines(cell)))
            )
            cells += f"<td>{text}</td>"
        rows += f"<tr><th>{html.escape(row)}</th>{cells}</tr>"
    legend = " · ".join(f"{s} {meaning}" for s, meaning in SQUARES)
    return f"<p><b>Gate matrix</b> (each test's binding gate, mean / limit)</p><table><tr><th></th>{head}</tr>{rows}</table><p>{legend}</p>"


def description_html(summary: dict, results: list[dict]) -> str:
    """The run summary's Allure description: the verdict, the gate matrix as a plain table (Allure
    sanitises descriptions, see test_page.py: no colours, so squares mark them), then a list; the
    coloured matrix and the score card are its first attachment."""
    items = [
        "The coloured gate matrix and the score card are in the first attachment below, the transfer "
        "heatmaps after it.",
    ]
    for card in summary.get("score_card", []):
        for w in card["worst_case"]:
            numbers = ", ".join(f"{m} {w[m]:.3g}{' ' + unit(m) if unit(m) else ''}" for m in HEADLINE_METRICS if m in w)
            numbers = numbers or "no numbers (see the test)"
            items.append(
                f"worst case of <b>{html.escape(card['codec'])}</b> on {html.escape(w['dataset'])} "
                f"({html.escape(w['defense'])}): {numbers}: {html.escape(w['outcome'] or '')}"
            )
    crashed = [r["name"] for r in results if r.get("kind") == "crashed"]
    if crashed:
        items.append("crashed (no result): " + ", ".join(html.escape(n) for n in crashed))
    verdict = f"<p><b>{html.escape(summary.get('verdict_line', ''))}</b></p>"
    matrix = _matrix_plain_html(summary.get("gate_matrix", {}))
    return verdict + matrix + "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def summary_html(summary: dict) -> str:
    """The run summary page: verdict, the gate matrix (worst case first), score card, defenses."""
    cards = [
        {
            "codec": c["codec"],
            "passed": c["passed"],
            "failed": c["failed"],
            "no limit": c["ungated"],
            **{
                f"worst case {m}": max((w.get(m, -math.inf) for w in c["worst_case"]), default=None)
                for m in HEADLINE_METRICS
            },
        }
        for c in summary.get("score_card", [])
    ]
    for card in cards:
        for k, v in card.items():
            if v == -math.inf:
                card[k] = None
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>nicrobust run summary</title></head>"
        "<body style='font:13px sans-serif'>"
        f"<h3>{html.escape(summary.get('verdict_line', ''))}</h3>"
        "<h3>Gates: mean / limit of each test's binding metric (worst case first)</h3>"
        + matrix_html(summary.get("gate_matrix", {}))
        + "<p>Green: ≥ 50 % headroom; yellow: < 50 %; orange: < 20 %; red: over the limit; grey: no limit applies.</p>"
        + "<h3>Score card: the worst case per codec is the headline</h3>"
        + _html_table(cards)
        + "<h3>Defenses: ΔPSNR (dB) undefended / non-adaptive / adaptive, and cost on clean images</h3>"
        + _html_table(summary.get("defenses", []))
        + "</body></html>"
    )
