"""Damage against budget: the pictures and the words of budget sweeps (tests of kind ``curve``).

* :func:`test_png`: one curve test, each gated metric against the budget, its limit drawn, ε* marked,
  the baseline release's curve dashed beside it (its test page);
* :func:`codec_pngs`: per codec and gated metric, one line per attack of the run, baselines dashed,
  the limit drawn (the run summary in Allure);
* :func:`line`: the terminal's sentence for a curve: where it breaks, and where the baseline broke.

Every picture needs matplotlib (the ``report`` extra); without it there is none (the numbers are in
the JSON).
"""

from __future__ import annotations

import io

from ..metrics.registry import unit


def _metric_axis(metric: str) -> str:
    return f"{metric} ({unit(metric)})" if unit(metric) else metric


def _limits(result: dict) -> dict:
    """{metric: limit} of the gates a curve's ε* was found for (its ``eps_star_by_metric`` and limits)."""
    return {g["metric"]: g["limit"] for g in result.get("gates", []) if g.get("kind") == "limit"}


def gated_metrics(result: dict) -> list[str]:
    found = list(result.get("eps_star_by_metric") or {})
    return (
        found or [m for m in ("delta_psnr", "delta_msssim", "bitrate_increase") if m in (result.get("mean") or {})][:1]
    )


def line(result: dict) -> str:
    """``codec[q3] pgd[eps7]:recon_error swept over eps: breaks at ε* = 3.1/255 (delta_psnr), baseline at 4.6/255``."""
    from ..names import attack_label, codec_of

    sweep = result["sweep"]
    u = sweep["unit"]
    here = (
        f"breaks at ε* = {result['eps_star']:.3g}{u} ({result['eps_star_metric']})"
        if "eps_star" in result
        else f"no limit crossed up to {sweep['values'][-1]:g}{u}"
    )
    comparison = result.get("comparison") or {}
    if "baseline_eps_star" in comparison:
        before = comparison["baseline_eps_star"]
        here += f", baseline at {before:.3g}{u}" if before is not None else ", baseline crossed no limit"
    return f"curve {codec_of(result['params'])} {attack_label(result['params'])}: {here}"


def _figure(n: int):
    from matplotlib.figure import Figure

    return Figure(figsize=(4.2 * n, 3.0))


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.tight_layout()
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def test_png(result: dict) -> bytes | None:
    """One curve test's picture; None without matplotlib."""
    try:
        metrics = gated_metrics(result)
        fig = _figure(len(metrics))
    except ImportError:
        return None
    key, u = result["sweep"]["key"], result["sweep"]["unit"]
    base = (result.get("comparison") or {}).get("baseline_points") or []
    limits = _limits(result)
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        ax.plot(
            [p[key] for p in result["points"]],
            [p["mean"].get(metric) for p in result["points"]],
            "o-",
            label="this run",
        )
        if base:
            ax.plot([p[key] for p in base], [p["mean"].get(metric) for p in base], "o--", alpha=0.7, label="baseline")
        if metric in limits:
            ax.axhline(limits[metric], color="red", linewidth=1, label="limit")
        star = (result.get("eps_star_by_metric") or {}).get(metric)
        if star is not None:
            ax.axvline(star, color="gray", linestyle=":", label=f"ε* {star:.3g}{u}")
        ax.set_xlabel(f"{key} ({u or 'budget'})", fontsize=8)
        ax.set_ylabel(_metric_axis(metric), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    return _png(fig)


def codec_pngs(results: list[dict]) -> list[tuple[str, bytes]]:
    """[(file name, PNG)] per codec: each gated metric against the budget, one line per attack."""
    from ..names import attack_label, codec_of

    curves = [r for r in results if r.get("kind") == "curve" and r.get("points")]
    if not curves:
        return []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    out = []
    for codec in dict.fromkeys(codec_of(r["params"]) for r in curves):
        mine = [r for r in curves if codec_of(r["params"]) == codec]
        metrics = list(dict.fromkeys(m for r in mine for m in gated_metrics(r)))
        fig = _figure(len(metrics))
        for k, metric in enumerate(metrics):
            ax = fig.add_subplot(1, len(metrics), k + 1)
            limits = set()
            for r in mine:
                key = r["sweep"]["key"]
                (handle,) = ax.plot(
                    [p[key] for p in r["points"]],
                    [p["mean"].get(metric) for p in r["points"]],
                    "o-",
                    label=attack_label(r["params"]),
                )
                base = (r.get("comparison") or {}).get("baseline_points") or []
                if base:
                    ax.plot(
                        [p[key] for p in base],
                        [p["mean"].get(metric) for p in base],
                        "--",
                        color=handle.get_color(),
                        alpha=0.7,
                        label="baseline",
                    )
                limits |= {v for m, v in _limits(r).items() if m == metric}
            for value in limits:
                ax.axhline(value, color="red", linewidth=1)
            ax.set_title(f"{codec}: {_metric_axis(metric)} against the budget", fontsize=8)
            ax.set_xlabel("budget (the sweep's units)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
        out.append((f"curves-{codec.replace('[', '-').replace(']', '')}.png", _png(fig)))
    return out
