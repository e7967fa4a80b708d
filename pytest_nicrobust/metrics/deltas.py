"""Per-image numbers of one attacked batch (the README's Definitions).

For each full-reference metric m (psnr, mse, msssim, vmaf) and image:
``{m}_clean`` = m(x, C(x)), ``{m}_adv`` = m(x', C(x')), ``delta_{m}`` = Δm,
``{m}_inputs`` = m(x, x') (perturbation visibility), ``{m}_recons`` = m(C(x), C(x')),
``amp_{m}`` = δm; plus ``bpp_clean``, ``bpp_adv``, ``bitrate_increase``, ``delta_bpp``.
"""

from __future__ import annotations

import math

from . import full_reference as M
from .registry import METRICS


def clean_scores(x, clean, metric_names=METRICS) -> dict:
    """m(x, C(x)) per metric: the same for every attack on a codec, so computed once and passed on."""
    return {name: M.FULL_REFERENCE[name](x, clean.x_hat) for name in metric_names}


def evaluate(x, x_adv, clean, adv, metric_names=METRICS, known: dict | None = None) -> list[dict]:
    """x, x_adv: inputs; clean, adv: :class:`RoundTrip` of x and x'; ``known``: :func:`clean_scores`
    of this batch when already computed. One dict per image."""
    columns: dict[str, list[float]] = {}
    known = known or clean_scores(x, clean, metric_names)
    for name in metric_names:
        fn = M.FULL_REFERENCE[name]
        scores = {
            "clean": known[name],
            "adv": fn(x_adv, adv.x_hat),
            "inputs": fn(x, x_adv),
            "recons": fn(clean.x_hat, adv.x_hat),
        }
        for key, value in scores.items():
            columns[f"{name}_{key}"] = value.tolist()
        columns[f"delta_{name}"] = M.delta(name, scores["clean"], scores["adv"]).tolist()
        columns[f"amp_{name}"] = M.amplification(name, scores["inputs"], scores["recons"]).tolist()
    columns["bpp_clean"] = clean.bpp.tolist()
    columns["bpp_adv"] = adv.bpp.tolist()
    columns["bitrate_increase"] = M.bitrate_increase(clean.bpp, adv.bpp).tolist()
    columns["delta_bpp"] = (adv.bpp - clean.bpp).tolist()
    n = x.shape[0]
    return [{k: float(v[i]) for k, v in columns.items()} for i in range(n)]


def defense_cost(undefended: list[dict], defended: list[dict]) -> list[dict]:
    """Per image: what the defense costs on the clean image, positive = worse with the defense.

    ``cost_{m}`` = m(x, C(x)) − m(x, C_def(x)) (MSE sign-flipped), ``cost_bpp`` = bpp_def(x)/bpp(x) − 1.
    """
    out = []
    for u, d in zip(undefended, defended):
        row = {"image": u["image"]}
        for name in METRICS:
            if f"{name}_clean" in u:
                diff = float(u[f"{name}_clean"] - d[f"{name}_clean"])
                row[f"cost_{name}"] = -diff if name == "mse" else diff
        row["cost_bpp"] = float(d["bpp_clean"] / u["bpp_clean"] - 1) if u["bpp_clean"] > 0 else math.nan
        out.append(row)
    return out


def mean_of(records: list[dict]) -> dict:
    """Mean of every numeric column over images (NaN stays NaN so gates catch it)."""
    if not records:
        return {}
    keys = [k for k, v in records[0].items() if isinstance(v, float)]
    return {k: math.fsum(r[k] for r in records) / len(records) for k in keys}
