"""The worst case per image: the strongest attacker within the suite's budgets.

A release gate asks what the strongest attacker achieves, not what one attack does. For one
(codec, dataset, defense), the worst-case item takes, per image and per metric, the worst value
over every attack and objective of the suite (each image's worst attack may differ), in the
spirit of AutoAttack's per-example worst case for classifiers (Croce & Hein, ICML 2020), and
gates the mean over images of those values.

It costs no attack: the per-image rows its members measured in this worker are reused, and a
member that did not run here (another xdist worker, ``-k``, another shard) is measured again from
the adversarial-image cache, or attacked again with the same seed, which gives the same x'. Under
xdist the scheduler (:mod:`pytest_nicrobust.scheduling`) hands a worst case out only once its
members are done or queued before it on the same worker, so it never waits on another worker's
attack. Its ``timings`` add up what the members measured again cost, under the same keys as a
case's (``cache_hit:<mode>``, ``cache_wait:<mode>``, ``attack:<mode>``, ``coding:<mode>``,
``metrics:<mode>``).
"""

from __future__ import annotations

import math

from ..names import attack_label
from ..outputs import test_page
from .conclude import conclude, gate_modes
from .measure import case_key, case_seeds, finish_means, load_subject, measure_case, raise_errors


def worse_is_higher(metric: str) -> bool:
    """Columns where a larger value means the attack hurt more (the gated deltas)."""
    return metric.startswith(("delta_", "amp_")) or metric == "bitrate_increase"


def worst_rows(members: list[tuple[str, list[dict]]]) -> list[dict]:
    """Per image, the worst value of each gated column over the members, and which member gave it.

    ``members``: (label, per-image rows); a NaN counts as the worst (the codec broke).
    """
    by_image = [{r["image"]: r for r in rows} for _, rows in members]
    images = [r["image"] for r in members[0][1]]
    out = []
    for image in images:
        row, winner = {"image": image}, {}
        for metric, first in by_image[0][image].items():
            if not isinstance(first, float) or not worse_is_higher(metric):
                continue
            candidates = [(rows[image][metric], label) for (label, _), rows in zip(members, by_image)]
            value, label = max(candidates, key=lambda c: math.inf if math.isnan(c[0]) else c[0])
            row[metric], winner[metric] = value, label
        out.append({**row, "winner": winner})
    return out


def run_worst_case(wc, ctx, result: dict, defense=None) -> None:
    """Fill ``result`` for a :class:`~pytest_nicrobust.config.cases.WorstCase`; gate it like any case."""
    result.update(
        kind="worst-case", params=wc.parameters, members=[m.name for m in wc.members], crop=wc.dataset.crop, timings={}
    )
    codec, images = load_subject(wc.codec, wc.dataset, ctx, result)
    measured = []
    for member in wc.members:
        seeds = case_seeds(ctx.run_seed, member)
        rows = ctx.measured.get(case_key(member, seeds))
        if rows is None:  # not measured on this worker: x' from the cache (or the attack), then measured
            with test_page.step(f"measure {member.name} again", {}):
                scratch = {}
                measure_case(member, codec, images, ctx, seeds, defense, scratch, pictures=False)
                for key, seconds in scratch["timings"].items():  # cache_hit / cache_wait / attack: what happened
                    result["timings"][key] = result["timings"].get(key, 0.0) + seconds
                raise_errors(member.name, scratch)
                rows = {m: b["per_image"] for m, b in scratch["modes"].items()}
        measured.append((attack_label(member.parameters), rows))
    result["modes"] = {
        mode: {"per_image": worst_rows([(label, rows[mode]) for label, rows in measured])} for mode in wc.gated_modes
    }
    finish_means(result, wc.gated_modes)
    result["winners"] = _win_counts(result["per_image"])
    conclude(wc.name, result, gate_modes(result, wc.gated_modes, ctx))


def _win_counts(rows: list[dict]) -> dict:
    """{metric: {attack: images it was the worst on}}: which attacks carry the worst case."""
    counts: dict = {}
    for row in rows:
        for metric, label in row["winner"].items():
            counts.setdefault(metric, {}).setdefault(label, 0)
            counts[metric][label] += 1
    return counts
