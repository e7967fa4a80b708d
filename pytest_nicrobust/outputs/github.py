"""The verdict where GitHub Actions shows it: the job summary and error annotations.

* ``$GITHUB_STEP_SUMMARY`` set (every GitHub Actions step has it): the run appended to that file as
  Markdown: the verdict line, the failing rows (gate, mean, limit, over by, headroom) and the gate
  matrix (codec · dataset · defense × attack, each cell the binding gate's mean / limit and
  headroom, marked by colour). GitHub renders it on the run's page; it caps a step's summary at
  1 MiB, so the failing rows stop at :data:`MAX_ROWS` and the matrix is left out past :data:`BUDGET`.
* ``GITHUB_ACTIONS=true``: one ``::error`` workflow command per failing test (failures furthest over
  their limit first), naming the suite file (and the line of the codec's table when it can be
  found), which GitHub shows as annotations on the run and the pull request. It shows 10 error
  annotations per step, so the first :data:`MAX_ANNOTATIONS` are written and a last line says how
  many more the job summary lists.

Both serve a run (the controller's terminal summary) and ``python -m pytest_nicrobust merge``.
"""

from __future__ import annotations

import os
import re

from .summary import (
    SQUARES,
    binding_gate,
    cell_square,
    gate_matrix,
    gate_phrase,
    gate_view,
    headroom,
    matrix_cell_lines,
    room_text,
    verdict_facts,
    verdict_line,
)

MAX_ROWS = 50  # failing rows in the job summary
MAX_ANNOTATIONS = 10  # GitHub shows 10 error annotations per step
BUDGET = 900_000  # bytes; GitHub refuses a step summary over 1 MiB


def _md(text) -> str:
    """A table cell's text: pipes escaped, no line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _failing(results: list[dict]) -> list[dict]:
    failing = [r for r in results if r.get("outcome") in ("failed", "error")]
    return sorted(failing, key=lambda r: (headroom(binding_gate(r)) if binding_gate(r) else -float("inf"), r["id"]))


def _failing_rows(results: list[dict]) -> list[str]:
    failing = _failing(results)
    if not failing:
        return []
    lines = [f"#### Failing tests ({len(failing)})", "", "| test | gate | mean | limit | over by | headroom |"]
    lines.append("|---|---|---|---|---|---|")
    for r in failing[:MAX_ROWS]:
        gate = binding_gate(r)
        if gate is None:
            error = (r.get("error") or "error").splitlines()[0][:200]
            lines.append(f"| {_md(r['name'])} | {_md(error)} | | | | |")
            continue
        v = gate_view(r, gate)
        u = f" {v['unit']}" if v["unit"] else ""
        name = v["metric"] + (f" [{v['mode']}]" if v["mode"] not in ("", "undefended", "transfer") else "")
        limit = f"change ≤ {v['allowed']:.4g}{u}" if v["kind"] == "regression" else f"{v['limit']:g}{u}"
        value = "NaN" if v["value"] is None or v["value"] != v["value"] else f"{v['value']:.4g}{u}"
        over = "" if v["value"] is None or v["value"] != v["value"] else f"{v['over']:.3g}{u}"
        room = room_text(v)
        lines.append(f"| {_md(r['name'])} | {_md(name)} | {value} | {limit} | {over} | {room} |")
    if len(failing) > MAX_ROWS:
        lines.append(f"\n… and {len(failing) - MAX_ROWS} more (every test is in the results JSON)")
    return lines + [""]


def _matrix(results: list[dict]) -> list[str]:
    matrix = gate_matrix(results)
    if not matrix["rows"]:
        return []
    lines = [
        "#### Gate matrix: each test's binding gate, mean / limit (headroom)",
        "",
        "| codec · dataset · defense | " + " | ".join(_md(c) for c in matrix["columns"]) + " |",
        "|---" * (len(matrix["columns"]) + 1) + "|",
    ]
    for row in matrix["rows"]:
        cells = []
        for column in matrix["columns"]:
            cell = matrix["cells"][row].get(column)
            if cell is None:
                cells.append("")
                continue
            cells.append(cell_square(cell) + " " + "<br>".join(_md(line) for line in matrix_cell_lines(cell)))
        lines.append(f"| {_md(row)} | " + " | ".join(cells) + " |")
    lines += ["", " · ".join(f"{square} {meaning}" for square, meaning in SQUARES), ""]
    return lines


def job_summary(results: list[dict], title: str = "nicrobust") -> str:
    """The run as Markdown: the verdict line, the failing rows, the gate matrix."""
    status, line = verdict_line(verdict_facts(results))
    icon = {"failed": "❌", "passed": "✅"}.get(status, "⚠️")
    head = [f"### {icon} {title} verdict: {status.upper() if status != 'skipped' else 'NOTHING GATED'}", "", line, ""]
    failing = _failing_rows(results)
    text = "\n".join(head + failing + _matrix(results))
    if len(text.encode()) > BUDGET:  # a huge suite: the verdict and the failures, not the matrix
        text = "\n".join(head + failing + ["(the gate matrix is too large for a job summary: see the report)", ""])
    return text


def append_job_summary(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _where(suite: str | None, codec: str, root: str, lines_of: dict) -> str:
    """``file=…[,line=…]`` of a test's suite, relative to the repository (the line of its codec's table)."""
    if not suite:
        return ""
    rel = _in_repository(suite, root)
    where = f"file={_property(rel)}"
    suite = os.path.join(root, rel)
    if suite not in lines_of:
        try:
            with open(suite, encoding="utf-8") as f:
                lines_of[suite] = f.read().splitlines()
        except OSError:
            lines_of[suite] = []
    label = re.escape(codec.split("[")[0])
    for number, text in enumerate(lines_of[suite], 1):
        if re.match(rf'\s*(name|model)\s*=\s*"{label}"', text):
            return f"{where},line={number}"
    return where


def _in_repository(suite: str, root: str) -> str:
    """The suite's path in the repository: relative to ``root``; for a shard's record written on another
    runner (another workspace), the longest tail of its path that exists under ``root``; else its name."""
    if os.path.abspath(suite).startswith(os.path.abspath(root) + os.sep):
        return os.path.relpath(suite, root)
    parts = os.path.normpath(suite).split(os.sep)
    for i in range(1, len(parts)):
        tail = os.path.join(*parts[i:])
        if os.path.isfile(os.path.join(root, tail)):
            return tail
    return os.path.basename(suite)


def annotations(results: list[dict], root: str) -> list[str]:
    """``::error`` workflow commands for the failing tests (the furthest over first), then a count of the rest."""
    failing = _failing(results)
    out, lines_of = [], {}
    for r in failing[:MAX_ANNOTATIONS]:
        gate = binding_gate(r)
        codec = (r.get("params") or {}).get("codec", "")
        where = _where(r.get("suite"), codec, root, lines_of)
        if gate is None:
            title, message = "nicrobust: error", (r.get("error") or "error").splitlines()[0]
        else:
            v = gate_view(r, gate)
            what = "worse than the baseline" if v["kind"] == "regression" else "over its limit"
            title, message = f"nicrobust: {v['metric']} {what}", gate_phrase(v)
        props = ",".join(p for p in (where, f"title={_property(title)}") if p)
        out.append(f"::error {props}::{_data(r['name'] + ': ' + message)}")
    if len(failing) > MAX_ANNOTATIONS:
        out.append(f"nicrobust: {len(failing) - MAX_ANNOTATIONS} more failing test(s) in the job summary and the JSON")
    return out


def report(results: list[dict], env, write_line, problems: list[str], annotate: bool = True) -> None:
    """Whatever of the two GitHub's variables ask for: the job summary appended, the annotations printed."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if path and results:
        try:
            append_job_summary(path, job_summary(results))
        except OSError as exc:
            problems.append(f"job summary {path} not written: {type(exc).__name__}: {exc}")
    if annotate and env.get("GITHUB_ACTIONS") == "true":
        for line in annotations(results, env.get("GITHUB_WORKSPACE") or os.getcwd()):
            write_line(line)
