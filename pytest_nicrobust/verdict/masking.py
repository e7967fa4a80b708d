"""Gradient masking: when a codec looks robust because its gradient misleads the attacks.

Every white-box attack follows the gradient of the codec's differentiable pass. When that pass
disagrees with the real coder (a rounding without straight-through, a detached branch, an integer
path), the attacks climb the wrong hill and the codec passes without being robust: the "obfuscated
gradients" of Athalye, Carlini & Wagner (ICML 2018). The checks here follow Carlini et al., "On
Evaluating Adversarial Robustness" (2019) and AutoAttack's own checks (Croce & Hein, ICML 2020);
each compares what the white-box attacks reached with what they should at least reach, on the
metric aligned with their objective (ΔPSNR for ``recon_error``, ...), per test (the mean over
images) and per image:

* ``below noise``: a white-box attack does worse than the noise baseline of the same budget;
* ``beaten by a query attack``: the gradient-free attack (Square: it queries the real round trip)
  beats every white-box attack of the same budget and objective by more than :data:`MARGIN`;
* ``beaten by a transfer``: an x' made by a white-box attack on *another* codec of the run hurts
  this codec more than its own white-box attacks of the same budget and objective (by more than
  :data:`MARGIN`): a surrogate's gradient worked better than the codec's own;
* ``unbounded attack fails``: a white-box attack without a budget (Carlini's sanity check: it must
  succeed) does not drive PSNR(x', C(x')) below what a uniform-noise image gets.

An honest codec gives none of these (the shipped codecs give none: the main job is the calibration;
the largest transfer/own ratio there is 1.05 on the mean and 1.15 per image, for CAdv, whose x'
hardly depends on the codec). Each suspicion names the codec, the attacks and the numbers.

Pure: rows in, suspicions out (no torch, no files); the worst-case test gathers the rows
(:mod:`pytest_nicrobust.run.worst_case`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..metrics.registry import GATES, unit

MARGIN = 0.25  # a reference must beat the codec's own best white-box attack by more than 25 % (and the gate's floor)
WORDS = "gradient masking suspected"


@dataclass(frozen=True)
class Source:
    """x' of one attack that reached the codec, and what it did there (rows of one mode)."""

    label: str  # "pgd[eps7]:recon_error", "transfer from mbt2018-mean[q3]: pgd[eps7]:recon_error"
    attack: str  # attack name
    objective: str
    budget: tuple  # (kind, value), e.g. ("linf", 7/255)
    role: str  # "white-box" (follows the codec's gradient), "query" (queries the real codec), "noise"
    origin: str  # "own" | "transfer"
    rows: list = field(default_factory=list)  # per-image rows (each with "image" and the metric columns)


def aligned_metric(objective: str, columns) -> str | None:
    """The gate a suspicion is judged on: the first gate aligned with the objective whose column exists."""
    for name, gate in GATES.items():
        if not name.startswith("transfer_") and gate.objective == objective and name in columns:
            return name
    return None


def _mean(rows: list, metric: str) -> float:
    values = [r[metric] for r in rows if metric in r]
    return sum(values) / len(values) if values else float("nan")


def _by_image(rows: list, metric: str) -> dict:
    return {r["image"]: r[metric] for r in rows if metric in r}


def _fmt(value: float, metric: str) -> str:
    u = unit(metric)
    return f"{value:.4g}{' ' + u if u else ''}"


def suspicion(
    check: str,
    codec: str,
    metric: str,
    value: float,
    reference: float,
    attack: str,
    against: str,
    images: list,
    why: str,
) -> dict:
    line = (
        f"{WORDS} on {codec}: {check}: {attack} reaches {metric} {_fmt(value, metric)}, "
        f"{against} {_fmt(reference, metric)} ({why})"
    )
    return {
        "check": check,
        "codec": codec,
        "metric": metric,
        "attack": attack,
        "value": value,
        "reference": reference,
        "against": against,
        "images": images,
        "line": line,
    }


def checks(codec: str, sources: list[Source], mode: str = "undefended") -> list[dict]:
    """The suspicions of one mode of a worst case (``sources``: own members and transfer x')."""
    out = []
    own = [s for s in sources if s.origin == "own"]
    for s in own:  # white-box below the noise baseline of its budget
        if s.role != "white-box" or not s.rows:
            continue
        metric = aligned_metric(s.objective, s.rows[0])
        for noise in (n for n in own if n.role == "noise" and n.budget == s.budget and n.rows):
            if metric is None or metric not in noise.rows[0]:
                continue
            mine, base = _mean(s.rows, metric), _mean(noise.rows, metric)
            if mine < base:
                per = _by_image(noise.rows, metric)
                images = [
                    {"image": i, "value": v, "reference": per[i]}
                    for i, v in _by_image(s.rows, metric).items()
                    if i in per and v < per[i]
                ]
                out.append(
                    suspicion(
                        "below noise",
                        codec,
                        metric,
                        mine,
                        base,
                        s.label,
                        f"less than {noise.label}",
                        images,
                        "its gradient leads nowhere better than random noise",
                    )
                )
    for ref in sources:  # an own query attack, or another codec's white-box x', beats the own white-box attacks
        judged = ref.role == "query" if ref.origin == "own" else ref.role == "white-box"
        if not judged or not ref.rows:
            continue
        metric = aligned_metric(ref.objective, ref.rows[0])
        peers = [
            s
            for s in own
            if s.role == "white-box" and s.objective == ref.objective and s.budget == ref.budget and s.rows
        ]
        if metric is None or not peers:
            continue
        best = max(peers, key=lambda s: _mean(s.rows, metric))
        mine, theirs = _mean(best.rows, metric), _mean(ref.rows, metric)
        floor = GATES[metric].floor
        if theirs > mine * (1 + MARGIN) + floor:
            per = _by_image(best.rows, metric)
            images = [
                {"image": i, "value": v, "reference": per[i]}
                for i, v in _by_image(ref.rows, metric).items()
                if i in per and v > per[i] * (1 + MARGIN) + floor
            ]
            check = "beaten by a transfer" if ref.origin == "transfer" else "beaten by a query attack"
            why = (
                "another codec's gradient led further than this codec's own"
                if ref.origin == "transfer"
                else "an attack without gradients went further than the gradient"
            )
            out.append(
                suspicion(
                    check,
                    codec,
                    metric,
                    theirs,
                    mine,
                    ref.label,
                    f"more than {MARGIN:.0%} above the best white-box attack of the same budget, {best.label}",
                    images,
                    why,
                )
            )
    for item in out:
        item["mode"] = mode
    return out


def unbounded_check(codec: str, rows: list[dict]) -> list[dict]:
    """Carlini's sanity check: ``rows`` per image {image, psnr_attacked, psnr_noise_image}; an unbounded
    white-box attack must leave PSNR(x', C(x')) below what a uniform-noise image gets."""
    failed = [r for r in rows if not r["psnr_attacked"] < r["psnr_noise_image"]]
    if not failed:
        return []
    value = sum(r["psnr_attacked"] for r in failed) / len(failed)
    reference = sum(r["psnr_noise_image"] for r in failed) / len(failed)
    images = [{"image": r["image"], "value": r["psnr_attacked"], "reference": r["psnr_noise_image"]} for r in failed]
    return [
        suspicion(
            "unbounded attack fails",
            codec,
            "psnr_adv",
            value,
            reference,
            "the unbounded attack",
            "not below a uniform-noise image's",
            images,
            "without a budget a white-box attack must wreck the reconstruction; its gradient does not lead there",
        )
    ]
