"""The worst case per image: the strongest attacker within the suite's budgets, and whether the
codec's gradient can be trusted.

A release gate asks what the strongest attacker achieves, not what one attack does. For one
(codec, dataset, defense), the worst-case item takes, per image and per metric, the worst value
over every x' that reached the codec in the run (each image's worst may come from a different
one), in the spirit of AutoAttack's per-example worst case for classifiers (Croce & Hein, ICML
2020), and gates the mean over images of those values. The x' are the suite's own attacks and
objectives (white-box, the gradient-free query attack, the noise baseline) and, undefended and with
transfer on, the x' the other codecs' attacks made (what their transfer cells carry here): a codec
whose gradient misleads its own attacks cannot hide from those, since the real coder is the same.

It costs no attack: the per-image rows its members measured in this worker are reused, and a
member that did not run here (another xdist worker, ``-k``, another shard) is measured again from
the adversarial-image cache, or attacked again with the same seed, which gives the same x'. The
other codecs' x' are read from the cache only (a run that did not make them, e.g. another shard,
lists them as missing). Under xdist the scheduler (:mod:`pytest_nicrobust.scheduling`) hands a
worst case out only once its members and those cases are done or queued before it on the same
worker. Its ``timings`` add up what was measured again, under the same keys as a case's.

Then the gradient-masking checks (:mod:`pytest_nicrobust.verdict.masking`) read the same rows, plus
one unbounded white-box attack (Carlini's sanity check), and the record's ``masking`` lists what
they suspect.
"""

from __future__ import annotations

import math

from ..attacks.presets import UNBOUNDED, budget_of, white_box
from ..names import attack_label
from ..outputs import test_page
from ..timeguard import TimeLimitExceeded
from ..verdict import masking
from .conclude import conclude, gate_modes
from .measure import batches, case_key, case_seeds, finish_means, load_subject, measure_case, raise_errors, timed
from .transfer import transfer_rows


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
            candidates = [
                (rows[image][metric], label)
                for (label, _), rows in zip(members, by_image)
                if image in rows and metric in rows[image]
            ]
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
    own = [(member, _member_rows(member, codec, images, ctx, defense, result)) for member in wc.members]
    theirs, missing = [], []
    if wc.sources:
        with test_page.step(f"the other codecs' x' on this codec ({len(wc.sources)})", {}):
            for source in wc.sources:
                rows = transfer_rows(source, codec, images, ctx, result["timings"])
                (missing.append(source.name) if rows is None else theirs.append((source, rows)))
        result["transfer_sources"] = {"measured": len(theirs), "missing": missing}
    sources = {mode: [_source(m, rows[mode], "own") for m, rows in own] for mode in wc.gated_modes}
    sources["undefended"] = sources.get("undefended", []) + [_source(s, rows, "transfer") for s, rows in theirs]
    result["modes"] = {
        mode: {"per_image": worst_rows([(s.label, s.rows) for s in sources[mode]])} for mode in wc.gated_modes
    }
    finish_means(result, wc.gated_modes)
    result["winners"] = _win_counts(result["per_image"])
    kinds = {s.label: _kind(s) for mode in wc.gated_modes for s in sources[mode]}
    result["winner_kinds"] = {m: _kind_counts(counts, kinds) for m, counts in result["winners"].items()}
    label = wc.codec.display
    suspicions = [line for mode in wc.gated_modes for line in masking.checks(label, sources[mode], mode)]
    if "undefended" in wc.gated_modes:
        with test_page.step("unbounded attack (sanity check)", {}), timed("sanity", result["timings"]):
            suspicions += masking.unbounded_check(label, unbounded_rows(codec, images, ctx, wc))
    result["masking"] = suspicions
    conclude(wc.name, result, gate_modes(result, wc.gated_modes, ctx), ctx)


def _member_rows(member, codec, images, ctx, defense, result) -> dict:
    """{mode: per-image rows} of a member: from this worker, else measured again (cache or attack)."""
    seeds = case_seeds(ctx.run_seed, member)
    rows = ctx.measured.get(case_key(member, seeds))
    if rows is not None:
        return rows
    with test_page.step(f"measure {member.name} again", {}):
        scratch: dict = {}
        try:
            measure_case(member, codec, images, ctx, seeds, defense, scratch, pictures=False)
        except TimeLimitExceeded as exc:  # name the member, and whom it waited for
            waits = ctx.cache.waiting()
            why = f", waiting for the x' that {waits[0]} is making" if waits else ""
            raise TimeLimitExceeded(f"{exc} while measuring its member {member.name} again{why}") from None
        for key, seconds in scratch["timings"].items():  # cache_hit / cache_wait / attack: what happened
            result["timings"][key] = result["timings"].get(key, 0.0) + seconds
        raise_errors(member.name, scratch)
        return {m: b["per_image"] for m, b in scratch["modes"].items()}


def _source(case, rows: list, origin: str) -> masking.Source:
    """One x' that reached the codec, as the masking checks and the winners table see it."""
    label = attack_label(case.parameters) + (f" from {case.codec.display}" if origin == "transfer" else "")
    name = case.attack.name
    role = "noise" if name == "noise" else "white-box" if white_box(name) else "query"
    return masking.Source(label, name, case.attack.objective, budget_of(name, case.attack.params), role, origin, rows)


def _kind(source: masking.Source) -> str:
    return (
        "transfer"
        if source.origin == "transfer"
        else {"white-box": "white-box", "query": "gradient-free"}.get(source.role, "noise")
    )


def _kind_counts(counts: dict, kinds: dict) -> dict:
    """{kind: images won}: whether own white-box attacks, the gradient-free one, noise or transfers won."""
    out: dict = {}
    for label, n in counts.items():
        out[kinds.get(label, "white-box")] = out.get(kinds.get(label, "white-box"), 0) + n
    return out


def unbounded_rows(codec, images, ctx, wc) -> list[dict]:
    """Per image: PSNR(x', C(x')) after an unbounded white-box attack, and PSNR(u, C(u)) of a uniform-noise
    image u (seeded from the test): the sanity check's two numbers."""
    import torch

    from .. import datasets
    from ..attacks import build_attack
    from ..codecs.base import round_to_8bit
    from ..metrics.full_reference import psnr
    from ..seeding import derive_seed

    seed = derive_seed(ctx.run_seed, wc.name, "unbounded")
    rows = []
    for group in batches(images, ctx.batch_size):
        x = datasets.to_tensor(group).to(ctx.device)
        attack = build_attack(UNBOUNDED[0], codec, UNBOUNDED[1], "recon_error", seed, overrides=UNBOUNDED[2])
        x_adv = round_to_8bit(attack(x))
        noise = round_to_8bit(torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)).to(x))
        attacked_psnr = psnr(x_adv, codec.roundtrip(x_adv).x_hat.to(x))
        noise_psnr = psnr(noise, codec.roundtrip(noise).x_hat.to(x))
        rows += [
            {"image": im.name, "psnr_attacked": float(a), "psnr_noise_image": float(n)}
            for im, a, n in zip(group, attacked_psnr.tolist(), noise_psnr.tolist())
        ]
    return rows


def _win_counts(rows: list[dict]) -> dict:
    """{metric: {attack: images it was the worst on}}: which attacks carry the worst case."""
    counts: dict = {}
    for row in rows:
        for metric, label in row["winner"].items():
            counts.setdefault(metric, {}).setdefault(label, 0)
            counts[metric][label] += 1
    return counts
