"""Source × target transfer matrices, assembled on the controller from the tests' results.

One matrix per (attack, dataset) and metric: rows are the codecs x' was made for, columns
every codec of the suite and the classical codecs. The diagonal is the white-box result
(the ``none`` test). Written as CSV and JSON and drawn as a heatmap PNG.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re

from ..transfer import CLASSICAL

METRICS = ("delta_psnr", "delta_vmaf", "bitrate_increase")


def _group(params: dict) -> str:
    objective = "" if params["objective"] == "none" else f"-{params['objective']}"
    return f"{params['attack']}{objective}-{params['dataset']}"


def assemble(results: list[dict]) -> dict:
    """{group: {"sources": [...], "targets": [...], "metrics": {metric: [[value|None]]}}}."""
    cells: dict = {}
    for r in results:
        if "mean" not in r:
            continue
        p = r["params"]
        if r.get("kind") == "transfer":
            source, target = r["source"], r["target"]
        elif r.get("kind") == "case" and p.get("defense") == "none":
            source = target = p["codec"] + (f"[{p['bitrate']}]" if p.get("bitrate") else "")
        else:
            continue
        cells.setdefault(_group(p), {})[(source, target)] = r["mean"]
    out = {}
    for group, values in sorted(cells.items()):
        sources = list(dict.fromkeys(s for s, _ in values))
        seen = list(dict.fromkeys(t for _, t in values))
        classical = [t for t in CLASSICAL if t in seen]
        targets = sources + [t for t in seen if t not in sources and t not in classical] + classical
        metrics = {}
        for m in METRICS:
            grid = [[_value(values.get((s, t)), m) for t in targets] for s in sources]
            if any(v is not None for row in grid for v in row):
                metrics[m] = grid
        out[group] = {"sources": sources, "targets": targets, "metrics": metrics}
    return out


def _value(mean, metric):
    if mean is None or metric not in mean:
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
    """A heatmap PNG per group; needs matplotlib (the ``report`` extra)."""
    return [(f"transfer-{_slug(group)}.png", heatmap_png(group, mat)) for group, mat in matrices.items()]


def plain_text(label: str) -> str:
    """A label matplotlib draws as written: ``$`` would start mathtext."""
    return label.replace("$", r"\$")


def heatmap_png(title: str, mat: dict) -> bytes:
    """One panel per metric; cells annotated; missing cells grey. Agg canvas, no pyplot state."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = list(mat["metrics"])
    rows, cols = len(mat["sources"]), len(mat["targets"])
    fig = Figure(figsize=(max(6.0, 0.9 * cols + 3.5), (0.45 * rows + 2.2) * len(metrics)))
    FigureCanvasAgg(fig)
    for k, metric in enumerate(metrics):  # one panel per metric, stacked
        ax = fig.add_subplot(len(metrics), 1, k + 1)
        grid = np.array([[np.nan if v is None else v for v in row] for row in mat["metrics"][metric]], dtype=float)
        ax.set_facecolor("#dddddd")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap="magma_r", aspect="auto")
        lo, hi = np.nanmin(grid), np.nanmax(grid)
        for i in range(rows):
            for j in range(cols):
                if not np.isnan(grid[i, j]):
                    dark = hi > lo and (grid[i, j] - lo) / (hi - lo) > 0.6
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        ax.set_xticks(range(cols), [plain_text(t) for t in mat["targets"]], rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(rows), [plain_text(t) for t in mat["sources"]], fontsize=7)
        ax.set_ylabel("x' made for (source)", fontsize=8)
        ax.set_title(f"{metric}  (measured on target →)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(plain_text(f"transfer: {title}"), fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()
