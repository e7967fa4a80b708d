"""Allure attachments for one test: parameters, steps with times, metric table, pictures.

Everything here is a no-op when allure-pytest is not installed or not active.
"""

from __future__ import annotations

import contextlib
import html
import io
import time

import numpy as np

try:  # optional dependency
    import allure
except ImportError:  # pragma: no cover - exercised only without allure-pytest
    allure = None


@contextlib.contextmanager
def step(title: str, timings: dict):
    """An Allure step that also records its wall time in ``timings[title]``."""
    start = time.perf_counter()
    ctx = allure.step(title) if allure else contextlib.nullcontext()
    with ctx:
        yield
    timings[title] = timings.get(title, 0.0) + time.perf_counter() - start


def describe_test(parameters: dict, codec_info) -> None:
    if not allure:
        return
    for key, value in parameters.items():
        allure.dynamic.parameter(key, value)
        allure.dynamic.label(f"nicrobust_{key}", value)
    allure.dynamic.tag(*(parameters[k].split("[")[0] for k in ("codec", "attack", "dataset") if parameters.get(k)))
    allure.dynamic.parent_suite("nicrobust")
    allure.dynamic.suite(parameters["codec"])
    allure.dynamic.sub_suite(parameters["attack"])
    if codec_info.random_init:
        allure.dynamic.label("nicrobust_weights", "RANDOM INIT (not a trained codec)")
        allure.dynamic.description("**Codec weights: random initialisation** — these numbers say nothing about a trained model.")
    else:
        allure.dynamic.label("nicrobust_weights", codec_info.weights)


def attach_text(name: str, text: str) -> None:
    if allure:
        allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def _columns(means: dict) -> list[str]:
    return [k for k in means if k.startswith(("delta_", "amp_", "bitrate", "cost_", "quality"))
            or k.endswith(("_clean", "_adv", "_inputs"))]


def _table(records: list[dict], means: dict) -> str:
    keys = _columns(means)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = [f"<tr><td>{html.escape(r['image'])}</td>" + "".join(f"<td>{r[k]:.4g}</td>" for k in keys) + "</tr>" for r in records]
    rows.append("<tr><th>mean</th>" + "".join(f"<th>{means[k]:.4g}</th>" for k in keys) + "</tr>")
    return f"<table border=1><tr><th>image</th>{head}</tr>{''.join(rows)}</table>"


def metric_table_html(result: dict, gates: list) -> str:
    """One table per mode (undefended / non-adaptive / adaptive), the defense's clean cost, the gates."""
    parts = []
    for mode, block in (result.get("modes") or {"": result}).items():
        parts.append(f"<h4>{html.escape(mode or 'values')}</h4>" + _table(block["per_image"], block["mean"]))
    defense = result.get("defense")
    if defense and defense.get("per_image"):
        parts.append(f"<h4>cost of {html.escape(defense['draw'])} on clean images (positive = worse)</h4>"
                     + _table(defense["per_image"], defense["cost"]))
    gate_rows = "".join(
        f"<tr><td>{html.escape(g.metric)}</td><td>{html.escape(g.mode)}</td><td>{g.value:.4g}</td><td>{g.limit:g}</td>"
        f"<td>{'pass' if g.passed else '<b>FAIL</b>'}</td><td>{html.escape(g.source)}</td></tr>" for g in gates)
    parts.append("<h4>gates</h4><table border=1><tr><th>metric</th><th>mode</th><th>mean</th><th>limit</th>"
                 f"<th>result</th><th>from</th></tr>{gate_rows}</table>")
    return "".join(parts)


def attach_metric_table(result: dict, gates) -> None:
    if allure:
        allure.attach(metric_table_html(result, gates), name="metrics", attachment_type=allure.attachment_type.HTML)


def picture_row(x, x_adv, rec_clean, rec_adv) -> bytes:
    """PNG: x | x' | C(x) | C(x') | |x'-x| amplified. Inputs are (3,H,W) tensors in [0,1]."""
    from PIL import Image, ImageDraw

    diff = (x_adv - x).abs()
    gain = float(1.0 / max(diff.max().item(), 1e-6))
    panels = [(x, "x"), (x_adv, "x'"), (rec_clean, "C(x)"), (rec_adv, "C(x')"), ((diff * gain).clamp(0, 1), f"|x'-x| x{gain:.0f}")]
    h, w = x.shape[-2:]
    label_h = 14
    row = Image.new("RGB", (5 * w + 16, h + label_h), "white")
    draw = ImageDraw.Draw(row)
    for i, (t, caption) in enumerate(panels):
        arr = (t.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        left = i * (w + 4)
        row.paste(Image.fromarray(arr), (left, label_h))
        draw.text((left + 2, 1), caption, fill="black")
    buf = io.BytesIO()
    row.save(buf, format="PNG")
    return buf.getvalue()


def attach_picture(name: str, png: bytes) -> None:
    if allure:
        allure.attach(png, name=name, attachment_type=allure.attachment_type.PNG)
