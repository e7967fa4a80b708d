"""A transfer cell on a worker: adversarial images made for a source codec, measured on another codec.

For every (codec, attack, dataset) of a suite, x' (made against the bare codec) is taken
from the adversarial-image cache — or made, if no test has made it yet — and coded by
every other codec of the suite (other architectures, bitrates, checkpoint versions) and
by JPEG, WebP and JPEG 2000 at the source codec's clean bitrate. One test per
(source, target), marked ``transfer``; thresholds gate them by ``transfer_*`` limits.
The cells themselves are :class:`~pytest_nicrobust.config.cases.TransferCase`.
"""

from __future__ import annotations

from .. import datasets
from ..codecs.builtin import classical
from ..metrics.deltas import evaluate, mean_of
from ..outputs import test_page
from .conclude import conclude, gate_modes
from .measure import attacked, batches, case_seeds, codec_record, on_target, report_timings, timed


def run_transfer(tcase, ctx, result: dict, defense=None) -> None:
    """Fill ``result`` for one (source, target) cell; raise GateFailure on a passed transfer_* limit."""
    src = tcase.source
    params = tcase.parameters
    seed = case_seeds(ctx.run_seed, src)[0]
    result.update(
        kind="transfer",
        params=params,
        attack_params=src.attack.params,
        seed=str(seed),
        crop=src.dataset.crop,
        source=src.codec.display,
        target=tcase.target_label,
        per_image=[],
        timings={},
    )
    timings = result["timings"]
    with test_page.step("load codecs and images", {}), timed("load", timings):
        source = ctx.codec(src.codec)
        target = None if isinstance(tcase.target, str) else ctx.codec(tcase.target)
        images = ctx.images(src.dataset)
    result["codec"] = codec_record(source)
    if target is not None:
        result["target_codec"] = codec_record(target)
    test_page.describe_test(params, source.info)
    for group in batches(images, ctx.batch_size):
        x = datasets.to_tensor(group).to(ctx.device)
        spent: dict = {}
        with test_page.step("adversarial images (cache or attack)", {}):
            x_adv = attacked(source, src.attack, seed, group, x, ctx, spent=spent, mode="transfer")
            report_timings(spent)  # says whether x' was read, waited for or made
        for key, seconds in spent.items():
            timings[key] = timings.get(key, 0.0) + seconds
        with test_page.step("encode + decode on the target", {}), timed("coding:transfer", timings):
            extra, known = [{} for _ in group], None
            if target is None:  # classical: match the source codec's clean bitrate
                coded, _ = ctx.clean(source, group, x, {}, cached=True)
                source_bpp = [float(coded[i][1]) for i in range(len(group))]
                qualities = [
                    classical.match_quality(classical.to_pixels(xi), tcase.target, b) for xi, b in zip(x, source_bpp)
                ]
                clean = classical.roundtrip(x, tcase.target, qualities)
                adv = classical.roundtrip(x_adv, tcase.target, qualities)
                extra = [{"quality": q, "bpp_source": b} for q, b in zip(qualities, source_bpp)]
            else:
                clean, adv, known = on_target(target, group, x, x_adv, ctx)
        with test_page.step("metrics", {}), timed("metrics:transfer", timings):
            rows = evaluate(x, x_adv, clean, adv, ctx.metrics, known)
        if not result["per_image"]:  # the first image's pictures, attached if the cell fails
            first = (group[0].name, x[0], x_adv[0], clean.x_hat[0], adv.x_hat[0])
        result["per_image"] += [
            {"image": image.name, **row, **extra[i]} for i, (image, row) in enumerate(zip(group, rows))
        ]
    result["mean"] = mean_of(result["per_image"])
    if target is not None:  # the worst case of the target reads these rows (same worker)
        ctx.measured[transfer_key(src, target)] = result["per_image"]
    gates = gate_modes(result, ("transfer",), ctx)
    if not all(g.passed for g in gates):
        test_page.attach_picture(first[0], test_page.picture_row(*first[1:]))
    conclude(tcase.name, result, gates, ctx)


def transfer_key(source_case, target) -> tuple:
    """Where a transfer cell's rows (x' of ``source_case`` measured on the codec ``target``) are kept per worker."""
    return ("transfer", source_case.suite, source_case.name, target.identity_digest())


def transfer_rows(source_case, target, images, ctx, timings: dict) -> list[dict] | None:
    """The rows of ``source_case``'s x' measured on ``target``, as its transfer cell measures them: from
    this worker's cell if it ran here, else from the cached x' (None when this run made no such x':
    another shard, a deselected case, no cache)."""
    key = transfer_key(source_case, target)
    if key in ctx.measured:
        return ctx.measured[key]
    source = ctx.codec(source_case.codec)
    seed = case_seeds(ctx.run_seed, source_case)[0]
    rows = []
    for group in batches(images, ctx.batch_size):
        x = datasets.to_tensor(group).to(ctx.device)
        x_adv = attacked(
            source, source_case.attack, seed, group, x, ctx, spent=timings, mode="transfer", cache_only=True
        )
        if x_adv is None:
            return None
        with timed("coding:transfer", timings):
            clean, adv, known = on_target(target, group, x, x_adv, ctx)
        with timed("metrics:transfer", timings):
            rows += [
                {"image": im.name, **row} for im, row in zip(group, evaluate(x, x_adv, clean, adv, ctx.metrics, known))
            ]
    ctx.measured[key] = rows
    return rows
