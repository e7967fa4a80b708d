"""A budget sweep on a worker: damage against budget for one codec, attack and objective, and ε*.

One ε says little about how far a codec is from breaking. A curve runs the attack at each budget of
the sweep, smallest first, measures every metric at each point, and reports ε*: the smallest budget
at which a gated metric crosses its limit, interpolated linearly between the two points around the
crossing (the first budget when the first point already crosses; absent when no point does).

Each point after the first starts from the previous point's x' (projected into the larger budget)
where the attack can (the L∞ attacks: I-FGSM, PGD, APGD, Square), and then spends
:data:`WARM_SHARE` of the attack's steps: the previous point already climbed most of the way, so a
sweep costs far less than its points run apart. An attack that cannot start from a given x'
(FTDA, MADC, SSAH, CAdv) runs every point in full. A curve that falls as the budget grows (a larger
budget holds every smaller one's x') says the attack was weak there: it is reported in ``falls``.

Points are not cached (a curve is one test); the x' of each point is the previous one's descendant,
so a curve depends on its whole sweep.
"""

from __future__ import annotations

import math

from .. import datasets
from ..attacks import build_attack, convergence
from ..attacks.presets import from_sweep, sweep_unit
from ..codecs.base import round_to_8bit
from ..metrics.deltas import evaluate, mean_of
from ..outputs import test_page
from ..seeding import derive_seed
from .conclude import conclude, curve_gates
from .measure import batches, load_subject, on_target, timed

WARM_SHARE = 0.5  # of the attack's steps (or queries) a point spends when it starts from the previous point's x'
STEP_KEYS = ("steps", "queries")


def budget_params(case, value: float, warm: bool) -> dict:
    """The attack's settings at one budget: the preset, the suite's overrides, the budget, and fewer
    steps when the point starts from the previous one's x'."""
    params = dict(case.attack.params)
    params[case.key] = from_sweep(case.attack.name, value)
    if warm:
        for key in STEP_KEYS:
            if key in params:
                params[key] = max(1, math.ceil(params[key] * WARM_SHARE))
    return {k: v for k, v in params.items() if k not in case.attack.params or params[k] != case.attack.params[k]}


def _attack(case, codec, seed, value, warm: bool):
    """The sweep's attack at one budget (``warm``: the shorter run that starts from the last point's x')."""
    params = {**dict(case.attack.overrides), **budget_params(case, value, warm)}
    return build_attack(
        case.attack.name, codec, case.attack.preset, case.attack.objective, seed, case.attack.proxy, params
    )


def run_curve(case, ctx, result: dict, defense=None) -> None:
    """Fill ``result`` for a :class:`~pytest_nicrobust.config.cases.CurveCase`; gate its ε*."""
    seed = derive_seed(ctx.run_seed, f"{case.suite.rsplit('/', 1)[-1]}::{case.attack_id}")
    result.update(
        kind="curve",
        params=case.parameters,
        attack_params=case.attack.params,
        seed=str(seed),
        crop=case.dataset.crop,
        sweep={"key": case.key, "unit": sweep_unit(case.attack.name), "values": list(case.values)},
        points=[],
        timings={},
    )
    codec, images = load_subject(case.codec, case.dataset, ctx, result)
    groups = list(batches(images, ctx.batch_size))
    previous: dict = {}  # batch index -> the previous point's x'
    for value in case.values:
        rows, traces = [], {}
        with test_page.step(f"{case.key} = {value:g}{sweep_unit(case.attack.name)}", {}):
            for g, group in enumerate(groups):
                x = datasets.to_tensor(group).to(ctx.device)
                warm = g in previous
                attack = _attack(case, codec, seed, value, warm)
                if warm and attack.warm_starts:
                    attack.warm_start = previous[g]
                elif warm:  # cannot start from it: the point runs in full
                    attack = _attack(case, codec, seed, value, False)
                with timed("attack:undefended", result["timings"]):
                    x_adv = round_to_8bit(attack(x))
                previous[g] = x_adv
                traces.update({im.name: t for im, t in zip(group, attack.image_traces())})
                with timed("coding:undefended", result["timings"]):
                    clean, adv, known = on_target(codec, group, x, x_adv, ctx)
                with timed("metrics:undefended", result["timings"]):
                    rows += [
                        {"image": im.name, **r}
                        for im, r in zip(group, evaluate(x, x_adv, clean, adv, ctx.metrics, known))
                    ]
        point = {case.key: value, "mean": mean_of(rows), "per_image": rows}
        if traces:
            point["converged"] = all(convergence.converged(t) for t in traces.values())
        result["points"].append(point)
    result["per_image"], result["mean"] = result["points"][-1]["per_image"], result["points"][-1]["mean"]
    conclude(case.name, result, curve_gates(result, ctx), ctx)
