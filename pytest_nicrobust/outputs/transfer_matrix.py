"""Source × target transfer matrices, assembled on the controller from the tests' results.

One matrix per (attack, objective, dataset) and metric: rows are the codecs x' was made for,
columns every codec of the suite and the classical codecs. The diagonal is the white-box result
(the ``none`` test). Each cell keeps the limit that gated it. Written as CSV and JSON and drawn
as heatmaps with one colour scale per metric across every attack, the limit marked.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re

from ..metrics.registry import unit
from ..names import CLASSICAL, codec_of

METRICS = ("delta_psnr", "delta_vmaf", "bitrate_increase")


def _group(params: dict) -> str:
    objective = "" if params["objective"] == "none" else f"-{params['objective']}"
    return f"{params['attack']}{objective}-{params['dataset']}"


def _limit(result: dict, metric: str):
    """The limit that gated ``metric`` in this test (transfer_* in a transfer cell), or None."""
    for g in result.get("gates", []):
        if g.get("kind", "limit") == "limit" and g["metric"].removeprefix("transfer_") == metric:
            return g["limit"]
    return None


def assemble(results: list[dict]) -> dict:
    """{group: {"sources", "targets", "metrics": {metric: [[value|None]]}, "limits": {metric: [[limit|None]]}}};
    empty when the run has no transfer cell (transfer off: no 1×1 matrices of the white-box tests)."""
    if not any(r.get("kind") == "transfer" for r in results):
        return {}
    cells: dict = {}
    for r in results:
        if "mean" not in r or "params" not in r:
            continue
        p = r["params"]
        if r.get("kind") == "transfer":
            source, target = r["source"], r["target"]
        elif r.get("kind") == "case" and p.get("defense") == "none":
            source = target = codec_of(p)
        else:
            continue
        cells.setdefault(_group(p), {})[(source, target)] = r
    out = {}
    for group, values in sorted(cells.items()):
        sources = list(dict.fromkeys(s for s, _ in values))
        seen = list(dict.fromkeys(t for _, t in values))
        classical = [t for t in CLASSICAL if t in seen]
        targets = sources + [t for t in seen if t not in sources and t not in classical] + classical
        metrics, limits = {}, {}
        for m in METRICS:
            grid = [[_value(values.get((s, t)), m) for t in targets] for s in sources]
            if any(v is not None for row in grid for v in row):
                metrics[m] = grid
                limits[m] = [
                    [_limit(values[(s, t)], m) if (s, t) in values else None for t in targets] for s in sources
                ]
        out[group] = {"sources": sources, "targets": targets, "metrics": metrics, "limits": limits}
    return out


def _value(result, metric):
    mean = (result or {}).get("mean") or {}
    if metric not in mean:
        return None
    v = float(mean[metric])
    return None if math.isnan(v) else v


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def tables(matrices: dict) -> list[tuple[str, bytes]]:
    """[(file name, content)]: a CSV per (group, metric) and one JSON with every matrix."""
    files = []
    for group, mat in matrices.items():
        for metric, grid in mat["metrics"].items():
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["source \\ target"] + mat["targets"])
            w.writerows([s] + ["" if v is None else f"{v:.6g}" for v in row] for s, row in zip(mat["sources"], grid))
            files.append((f"transfer-{_slug(group)}-{metric}.csv", buf.getvalue().encode()))
    files.append(("transfer.json", json.dumps(matrices, indent=1).encode()))
    return files


def heatmaps(matrices: dict) -> list[tuple[str, bytes]]:
    """A heatmap PNG per group, every group on the same colour scale per metric; needs matplotlib."""
    scales = {}
    for mat in matrices.values():
        for metric, grid in mat["metrics"].items():
            seen = [v for row in grid for v in row if v is not None]
            seen += [v for row in mat["limits"].get(metric, []) for v in row if v is not None]
            lo, hi = scales.get(metric, (0.0, 0.0))
            scales[metric] = (min([lo] + seen), max([hi] + seen))
    return [(f"transfer-{_slug(group)}.png", heatmap_png(group, mat, scales)) for group, mat in matrices.items()]


def plain_text(label: str) -> str:
    """A label matplotlib draws as written: ``$`` would start mathtext."""
    return label.replace("$", r"\$")


def axis_title(metric: str) -> str:
    """``delta_psnr (dB)``: a matrix's metric with its unit, as every output prints it."""
    return f"{metric} ({unit(metric)})" if unit(metric) else metric


def bar_limit(limits) -> float | None:
    """The limit the colour bar marks: the one most cells off the diagonal (the transfer cells) share."""
    import numpy as np

    counts: dict = {}
    for i, row in enumerate(limits):
        for j, v in enumerate(row):
            if not np.isnan(v):
                counts[float(v)] = counts.get(float(v), 0) + (1 if i != j else 0) + 1e-3
    return max(counts, key=counts.get) if counts else None


def heatmap_png(title: str, mat: dict, scales: dict) -> bytes:
    """One panel per metric on its fixed scale ``scales[metric] = (lo, hi)``; cells over their limit
    are outlined in red and the colour bar marks the limit; missing cells grey. Agg canvas, no pyplot."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    metrics = list(mat["metrics"])
    rows, cols = len(mat["sources"]), len(mat["targets"])
    fig = Figure(figsize=(max(6.0, 0.9 * cols + 3.5), (0.45 * rows + 2.2) * len(metrics)))
    FigureCanvasAgg(fig)
    for k, metric in enumerate(metrics):  # one panel per metric, stacked
        ax = fig.add_subplot(len(metrics), 1, k + 1)
        grid = np.array([[np.nan if v is None else v for v in row] for row in mat["metrics"][metric]], dtype=float)
        limits = np.array([[np.nan if v is None else v for v in row] for row in mat["limits"][metric]], dtype=float)
        lo, hi = scales[metric]
        limit = bar_limit(limits)
        ax.set_facecolor("#dddddd")
        im = ax.imshow(
            np.ma.masked_invalid(grid), cmap="magma_r", aspect="auto", vmin=lo, vmax=hi if hi > lo else lo + 1
        )
        for i in range(rows):
            for j in range(cols):
                if np.isnan(grid[i, j]):
                    continue
                dark = hi > lo and (grid[i, j] - lo) / (hi - lo) > 0.6
                ax.text(
                    j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black"
                )
                if not np.isnan(limits[i, j]) and grid[i, j] > limits[i, j]:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_xticks(range(cols), [plain_text(t) for t in mat["targets"]], rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(rows), [plain_text(t) for t in mat["sources"]], fontsize=7)
        ax.set_ylabel("x' made for (source)", fontsize=8)
        others = sorted({float(v) for v in limits.flatten() if not np.isnan(v)} - {limit})
        note = f"; white-box limit {', '.join(f'{v:g}' for v in others)}" if others else ""
        ax.set_title(f"{axis_title(metric)}, measured on the target →  (red outline: over its limit{note})", fontsize=9)
        bar = fig.colorbar(im, ax=ax, fraction=0.046)
        bar.ax.tick_params(labelsize=7)
        if limit is not None:  # one limit per bar: the transfer cells' (the diagonal's own is in the title)
            bar.ax.axhline(limit, color="red", linewidth=2)
            bar.ax.set_xlabel(f"limit\n{limit:g}", color="red", fontsize=7)
    fig.suptitle(plain_text(f"transfer: {title}"), fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()
