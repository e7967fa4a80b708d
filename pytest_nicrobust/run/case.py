"""One (codec, bitrate, attack, dataset, defense) test on a worker: load, attack, measure, gate."""

from __future__ import annotations

from .conclude import conclude, gate_modes
from .measure import case_key, case_seeds, finish_means, load_subject, measure_case, raise_errors


def run_case(case, ctx, result: dict, defense=None) -> None:
    """Fill ``result`` (a plain dict carried to the controller) and raise GateFailure on a passed limit."""
    seeds = case_seeds(ctx.run_seed, case)
    result.update(
        kind="case",
        params=case.parameters,
        attack_params=case.attack.params,
        seed=str(seeds[0]),
        crop=case.dataset.crop,
        timings={},
    )
    codec, images = load_subject(case.codec, case.dataset, ctx, result)
    try:
        measure_case(case, codec, images, ctx, seeds, defense, result)
    finally:  # a decode that raises, a time limit: the rows measured keep their means (the schema's mode block)
        finish_means(result, case.gated_modes)
    raise_errors(case.name, result)
    ctx.measured[case_key(case, seeds)] = {m: b["per_image"] for m, b in result["modes"].items()}
    conclude(case.name, result, gate_modes(result, case.gated_modes, ctx), ctx)
