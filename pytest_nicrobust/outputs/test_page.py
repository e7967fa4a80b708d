"""Allure attachments for one test: parameters, steps with times, metric table, pictures.

Everything here is a no-op when allure-pytest is not installed or not active.
"""

from __future__ import annotations

import contextlib
import html
import io
import time

import numpy as np

from ..metrics.registry import unit as unit_of
from ..names import mode_suffix

try:  # optional dependency
    import allure
except ImportError:  # pragma: no cover - exercised only without allure-pytest
    allure = None


TABLE_CSS = "body{font:12px sans-serif} table{border-collapse:collapse} td,th{border:1px solid #999;padding:2px 5px}"


@contextlib.contextmanager
def step(title: str, timings: dict):
    """An Allure step that also records its wall time in ``timings[title]``."""
    start = time.perf_counter()
    ctx = allure.step(title) if allure else contextlib.nullcontext()
    with ctx:
        yield
    timings[title] = timings.get(title, 0.0) + time.perf_counter() - start


class _AsWritten:
    """A parameter value Allure shows as the user wrote it (allure-pytest shows ``repr()``: quotes on strings)."""

    def __init__(self, text):
        self.text = str(text)

    def __repr__(self) -> str:
        return self.text


def describe_test(parameters: dict, codec_info) -> None:
    """Parameters and labels; the suites tree: nicrobust › codec › attack, and for transfer cells
    nicrobust transfer › source codec[q] › attack · objective · dataset (a level of their own).
    Tags come from the test's markers (codec_…, attack_…, dataset_…), once each."""
    if not allure:
        return
    for key, value in parameters.items():
        allure.dynamic.parameter(key, _AsWritten(value))
        allure.dynamic.label(f"nicrobust_{key}", value)
    codec_q = parameters["codec"] + (f"[{parameters['bitrate']}]" if parameters.get("bitrate") else "")
    if parameters.get("target"):
        allure.dynamic.parent_suite("nicrobust transfer")
        allure.dynamic.suite(codec_q)
        allure.dynamic.sub_suite(
            f"{parameters['attack']} · {parameters.get('objective', '')} · {parameters.get('dataset', '')}"
        )
    else:
        allure.dynamic.parent_suite("nicrobust")
        allure.dynamic.suite(parameters["codec"])
        allure.dynamic.sub_suite(parameters["attack"])
    allure.dynamic.story(codec_q)
    allure.dynamic.label(
        "nicrobust_weights", "RANDOM INIT (not a trained codec)" if codec_info.random_init else str(codec_info.weights)
    )
    if codec_info.details:  # what the codec says of itself (file, sha256, a tree's version and line, ...)
        text = "; ".join(f"{key}={value}" for key, value in codec_info.details.items())
        allure.dynamic.parameter("codec details", _AsWritten(text), excluded=True)  # not in Allure's history id


def attach_text(name: str, text: str) -> None:
    if allure:
        allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def gates_html(result: dict, gates: list) -> str:
    """What a test page leads with: each gated mean with its unit, limit and headroom, and the
    baseline. A list: Allure sanitises descriptions (no styles, unstyled tables run together)."""
    items = []
    if result.get("codec", {}).get("random_init"):
        items.append("<b>Codec weights: random initialisation</b>: these numbers say nothing about a trained model.")
    if not gates:
        items.append("<b>No limit in thresholds.toml applies</b>: measured, not gated (reported as skipped).")
    for line in result.get("warnings") or []:  # gradient masking, an attack that had not converged
        items.append(f"<b>warning</b>: {html.escape(line)}")
    for g in sorted(gates, key=lambda g: (g.passed, g.value - g.limit if g.value == g.value else -1e300)):
        mode = html.escape(mode_suffix(g.mode))  # failures first
        room = "NaN" if g.value != g.value else f"{100 * (g.limit - g.value) / max(abs(g.limit), 1e-9):.0f} %"
        verdict = "pass" if g.passed else "<b>FAIL</b>"
        what = " against the baseline" if g.kind == "regression" else ""
        items.append(
            f"{verdict}: <b>{html.escape(g.metric)}</b>{mode}{what}: {html.escape(g.numbers())}, "
            f"headroom {room} ({html.escape(g.source)})"
        )
    rows = result.get("per_image") or []
    if gates and rows and rows[0].get("winner"):
        metric = min(gates, key=lambda g: (g.limit - g.value) / max(abs(g.limit), 1e-9)).metric
        won = ", ".join(
            f"{html.escape(str(r['image']))}: {html.escape(str((r.get('winner') or {}).get(metric, '?')))}"
            for r in rows
        )
        items.append(f"Worst attack per image for {html.escape(metric)}: {won} (every metric: the metrics attachment)")
    comparison = result.get("comparison")
    if comparison and comparison.get("status") == "new":
        items.append(f"New test: not in the baseline {html.escape(comparison['baseline'])}.")
    elif comparison and comparison.get("status") == "not comparable":
        items.append(f"Not compared with the baseline: {html.escape(comparison.get('reason', ''))}.")
    elif comparison:
        before = comparison.get("baseline_mean") or {}
        now = result.get("mean") or {}
        change = ", ".join(
            f"{html.escape(m)} {now.get(m, float('nan')):.4g} (baseline {before.get(m, float('nan')):.4g}, "
            f"change {v:+.3g})"
            for m, v in comparison["change"].items()
        )
        items.append(f"Against the baseline {html.escape(comparison['baseline'])}: {change}")
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def label_outcome(gates: list) -> None:
    """Behaviors tab: epic = the outcome, one feature per failed (or gated) metric, story = the codec.
    A test failing two metrics is listed under both."""
    if not allure:
        return
    failed = [g.metric for g in gates if not g.passed]
    allure.dynamic.epic("over the limit" if failed else "within the limits" if gates else "no limit applies")
    allure.dynamic.feature(*dict.fromkeys(failed or [g.metric for g in gates] or ["not gated"]))


# The metric table's default columns (the rest of every row is in the "all metrics" CSV attachment).
DEFAULT_COLUMNS = (
    "delta_psnr",
    "delta_msssim",
    "delta_vmaf",
    "bitrate_increase",
    "psnr_clean",
    "psnr_adv",
    "bpp_clean",
    "bpp_adv",
    "psnr_inputs",
    "cost_psnr",
    "cost_bpp",
    "quality",
)


def _columns(means: dict, gated=()) -> list[str]:
    return [k for k in means if k in DEFAULT_COLUMNS or k in gated]


def _table(records: list[dict], means: dict, gated=()) -> str:
    keys = _columns(means, gated)
    head = "".join(f"<th>{html.escape(k)}" + (f"<br>({unit_of(k)})" if unit_of(k) else "") + "</th>" for k in keys)
    rows = [
        f"<tr><td>{html.escape(r['image'])}</td>"
        + "".join(f"<td>{r.get(k, float('nan')):.4g}</td>" for k in keys)
        + "</tr>"
        for r in records
    ]
    rows.append("<tr><th>mean</th>" + "".join(f"<th>{means[k]:.4g}</th>" for k in keys) + "</tr>")
    return f"<table border=1><tr><th>image</th>{head}</tr>{''.join(rows)}</table>"


def metrics_csv(result: dict) -> str:
    """Every column of every row, per mode (the metric table shows the main ones)."""
    out = []
    for mode, block in (result.get("modes") or {"": result}).items():
        keys = [k for k in (block.get("mean") or {}) if k != "image"]
        out.append(",".join(["mode", "image"] + [f"{k} ({unit_of(k)})" if unit_of(k) else k for k in keys]))
        for r in block.get("per_image", []):
            out.append(
                ",".join(
                    [mode or "values", str(r.get("image", ""))]
                    + [
                        f"{r.get(k, float('nan')):.6g}" if isinstance(r.get(k), (int, float)) else str(r.get(k, ""))
                        for k in keys
                    ]
                )
            )
    return "\n".join(out) + "\n"


def winners_html(result: dict) -> str:
    """Worst case: which attack won each image, per gated metric (the rows its gate reads)."""
    rows = result.get("per_image") or []
    if not rows or not any(r.get("winner") for r in rows):
        return ""
    metrics = [
        m
        for m in ("delta_psnr", "delta_msssim", "delta_vmaf", "bitrate_increase", "delta_mse")
        if any(m in (r.get("winner") or {}) for r in rows)
    ]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    body = "".join(
        f"<tr><td>{html.escape(str(r['image']))}</td>"
        + "".join(
            f"<td>{html.escape(str((r.get('winner') or {}).get(m, '')))} ({r.get(m, float('nan')):.3g})</td>"
            for m in metrics
        )
        + "</tr>"
        for r in rows
    )
    return (
        "<h4>which attack won each image (the worst value per image and metric)</h4>"
        f"<table border=1><tr><th>image</th>{head}</tr>{body}</table>"
    )


def metric_table_html(result: dict, gates: list) -> str:
    """One table per mode (undefended / non-adaptive / adaptive), the defense's clean cost, the gates."""
    parts = []
    gated = {g.metric.removeprefix("transfer_") for g in gates}
    parts.append(winners_html(result))
    for mode, block in (result.get("modes") or {"": result}).items():
        parts.append(f"<h4>{html.escape(mode or 'values')}</h4>" + _table(block["per_image"], block["mean"], gated))
    defense = result.get("defense")
    if defense and defense.get("per_image"):
        parts.append(
            f"<h4>cost of {html.escape(defense['draw'])} on clean images (positive = worse)</h4>"
            + _table(defense["per_image"], defense["cost"], gated)
        )
    parts.append('<p>The main columns; every metric of every image is in the attachment "all metrics (CSV)".</p>')
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{TABLE_CSS}</style></head><body>"
        + gates_html(result, gates)
        + "".join(parts)
        + "</body></html>"
    )


def attach_metric_table(result: dict, gates) -> None:
    if allure:
        allure.dynamic.description_html(gates_html(result, gates))
        label_outcome(gates)
        allure.attach(metric_table_html(result, gates), name="metrics", attachment_type=allure.attachment_type.HTML)
        allure.attach(metrics_csv(result), name="all metrics (CSV)", attachment_type=allure.attachment_type.CSV)


DIFF_GAIN = 10  # fixed, so pictures of different tests compare: a change of 7/255 shows as 70/255


def picture_row(x, x_adv, rec_clean, rec_adv) -> bytes:
    """JPEG: x | x' | C(x) | C(x') | |x'−x| and |C(x')−C(x)| at a fixed gain. Inputs: (3,H,W) tensors in [0,1].

    JPEG (quality 90), not PNG: the row is for the eye (the measured images are in the cache, lossless),
    and it keeps a whole run's Allure results small.
    """
    from PIL import Image, ImageDraw

    panels = [
        (x, "x"),
        (x_adv, "x'"),
        (rec_clean, "C(x)"),
        (rec_adv, "C(x')"),
        (((x_adv - x).abs() * DIFF_GAIN).clamp(0, 1), f"|x'-x| x{DIFF_GAIN}"),
        (((rec_adv - rec_clean).abs() * DIFF_GAIN).clamp(0, 1), f"|C(x')-C(x)| x{DIFF_GAIN}"),
    ]
    h, w = x.shape[-2:]
    label_h = 14
    row = Image.new("RGB", (len(panels) * (w + 4) - 4, h + label_h), "white")
    draw = ImageDraw.Draw(row)
    for i, (t, caption) in enumerate(panels):
        arr = (t.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        left = i * (w + 4)
        row.paste(Image.fromarray(arr), (left, label_h))
        draw.text((left + 2, 1), caption, fill="black")
    buf = io.BytesIO()
    row.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def attach_stream(name: str, data: bytes) -> None:
    """A stream's bytes, as a file a reader downloads (a bitstream test's finding)."""
    if allure:
        allure.attach(data, name=name, attachment_type=None, extension="bin")


def attach_picture(name: str, jpeg: bytes) -> None:
    if allure:
        allure.attach(jpeg, name=name, attachment_type=allure.attachment_type.JPG)


def convergence_png(result: dict) -> bytes | None:
    """The attack's objective per step, one line per image (thin) and their mean (thick), per mode;
    None without matplotlib or without a curve."""
    curves = {m: b["convergence"] for m, b in (result.get("modes") or {}).items() if b.get("convergence")}
    if not curves:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(4.2 * len(curves), 3.0))
    for k, (mode, curve) in enumerate(curves.items()):
        ax = fig.add_subplot(1, len(curves), k + 1)
        for name, values in curve["per_image"].items():
            ax.plot(values, linewidth=0.8, alpha=0.6, label=name[:24])
        ax.plot(curve["mean"], color="black", linewidth=2, label="mean")
        state = "converged" if curve["converged"] else "NOT converged"
        ax.set_title(f"{mode}: {curve['objective']} ({state})", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def attach_convergence(result: dict) -> None:
    """The loss curve of the test's attack on its page (Carlini et al. 2019, §5: show that it flattened)."""
    if allure:
        png = convergence_png(result)
        if png:
            allure.attach(png, name="objective per step", attachment_type=allure.attachment_type.PNG)


def attach_curve(result: dict) -> None:
    """A budget sweep's damage against budget on its page, the limit and the baseline's curve beside it."""
    if allure and result.get("kind") == "curve":
        from .curves import test_png

        png = test_png(result)
        if png:
            allure.attach(png, name="damage against budget", attachment_type=allure.attachment_type.PNG)
