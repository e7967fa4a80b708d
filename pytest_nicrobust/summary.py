"""Run-level summaries built on the controller: score card per codec and the defense table."""

from __future__ import annotations

import html
import math


def _codec(params: dict) -> str:
    return params["codec"] + (f"[{params['bitrate']}]" if params.get("bitrate") else "")


def _attack(params: dict) -> str:
    return params["attack"] + ("" if params["objective"] == "recon_shift" else f",{params['objective']}")


def _overshoot(g: dict) -> float:
    if math.isnan(g["value"]):
        return math.inf
    return (g["value"] - g["limit"]) / max(abs(g["limit"]), 1e-9)


def score_card(results: list[dict]) -> list[dict]:
    """Per codec: pass/fail counts, the attack with the largest ΔPSNR, the gate nearest (or most over) its limit."""
    cards: dict = {}
    for r in results:
        if r.get("kind") != "case":
            continue
        c = cards.setdefault(_codec(r["params"]), {"codec": _codec(r["params"]), "passed": 0, "failed": 0,
                                                   "worst_attack": None, "worst_metric": None})
        c["passed" if r.get("outcome") == "passed" else "failed"] += 1
        dp = (r.get("mean") or {}).get("delta_psnr")
        name = f"{_attack(r['params'])} ({r['params']['defense']})"
        if dp is not None and (c["worst_attack"] is None or dp > c["worst_attack"]["delta_psnr"]):
            c["worst_attack"] = {"attack": name, "delta_psnr": dp}
        for g in r.get("gates", []):
            if c["worst_metric"] is None or _overshoot(g) > c["worst_metric"]["overshoot"]:
                c["worst_metric"] = {"metric": g["metric"], "mode": g.get("mode", ""), "value": g["value"],
                                     "limit": g["limit"], "overshoot": _overshoot(g), "test": r["name"]}
    return list(cards.values())


def defense_table(results: list[dict]) -> list[dict]:
    """Per defended test: ΔPSNR undefended / non-adaptive / adaptive and the clean cost."""
    rows = []
    for r in results:
        if r.get("kind") != "case" or "defense" not in r or "modes" not in r:
            continue
        m = {mode: block["mean"] for mode, block in r["modes"].items()}
        cost = r["defense"].get("cost", {})
        rows.append({"codec": _codec(r["params"]), "attack": _attack(r["params"]), "defense": r["params"]["defense"],
                     "delta_psnr_undefended": m["undefended"].get("delta_psnr"),
                     "delta_psnr_non_adaptive": m["non-adaptive"].get("delta_psnr"),
                     "delta_psnr_adaptive": m["adaptive"].get("delta_psnr"),
                     "bitrate_increase_adaptive": m["adaptive"].get("bitrate_increase"),
                     "cost_psnr": cost.get("cost_psnr"), "cost_bpp": cost.get("cost_bpp")})
    return rows


def _fmt(v) -> str:
    return html.escape(v) if isinstance(v, str) else ("" if v is None else f"{v:.3g}")


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r[k])}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table border=1><tr>{head}</tr>{body}</table>"


def summary_html(cards: list[dict], defenses: list[dict]) -> str:
    flat = [{"codec": c["codec"], "passed": c["passed"], "failed": c["failed"],
             "worst attack": c["worst_attack"]["attack"] if c["worst_attack"] else None,
             "its ΔPSNR (dB)": c["worst_attack"]["delta_psnr"] if c["worst_attack"] else None,
             "worst metric": (f"{c['worst_metric']['metric']} [{c['worst_metric']['mode']}]" if c["worst_metric"] else None),
             "value": c["worst_metric"]["value"] if c["worst_metric"] else None,
             "limit": c["worst_metric"]["limit"] if c["worst_metric"] else None} for c in cards]
    return ("<h3>Robustness score card</h3>" + _html_table(flat)
            + "<h3>Defenses: ΔPSNR (dB) undefended / non-adaptive / adaptive, and cost on clean images</h3>"
            + _html_table(defenses))
