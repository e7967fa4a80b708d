"""Measuring a test's images: x' from the cache or the attack, encode + decode, metrics, per mode.

Everything measured is put into the result record as it is computed, so a failure half-way keeps
the images done, and an image the codec fails on is named while the others are still measured.

An undefended case has one mode, ``undefended``. A defended case has three: ``undefended``
(x' against the bare codec, measured on it: for reference), ``non-adaptive`` (the same x',
measured through the defense) and ``adaptive`` (x' made through the defense, measured through
it). Both defended modes are gated. The adaptive attacker knows the defense but not its secret
draw. Against a random defense it uses expectation over transformation (EOT): at every step it
averages its objective over ``eot_samples`` fresh draws, each compared with the clean C(x) of
the same draw (a reference from another draw made the attack weaker than no adaptation at all).
Against a deterministic defense it attacks through the defense itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import CodecError, datasets
from ..attacks import build_attack, convergence
from ..codecs.base import NonFiniteError, RoundTrip, non_finite_images, round_to_8bit
from ..metrics.deltas import defense_cost, evaluate, mean_of
from ..outputs import test_page
from ..seeding import attack_seed, defense_seed
from .advcache import cache_key


def batches(images, size):
    """Groups of at most ``size`` images of equal shape, in data-set order."""
    by_shape: dict = {}
    for im in images:
        by_shape.setdefault(im.pixels.shape, []).append(im)
    for group in by_shape.values():
        for i in range(0, len(group), size):
            yield group[i : i + size]


# A record's ``timings``: seconds per step, under stable keys. ``load``, and per mode
# (undefended, non-adaptive, adaptive, transfer) ``attack:<mode>`` (x' made here by the attack),
# ``cache_hit:<mode>`` (x' read from the adversarial-image cache), ``cache_wait:<mode>`` (blocked
# while another worker made that x'), ``coding:<mode>`` (encode + decode), ``metrics:<mode>``.
STEPS = {
    "load": "load codec and images",
    "attack": "x' made by the attack",
    "cache_hit": "x' read from the adversarial-image cache",
    "cache_wait": "waited while another worker made x'",
    "coding": "encode + decode",
    "metrics": "metrics",
}


def step_title(key: str) -> str:
    """The words for a timing key on the Allure page: ``cache_wait:adaptive`` -> ``waited ... (adaptive)``."""
    step, _, mode = key.partition(":")
    return f"{STEPS.get(step, step)} ({mode})" if mode else STEPS.get(step, step)


def report_timings(timings: dict) -> None:
    """One Allure step per timing (its title says what happened and how long), in the main thread."""
    for key, seconds in timings.items():
        if key != "load":
            with test_page.step(f"{step_title(key)}: {seconds:.2f} s", {}):
                pass


def attacked(
    codec,
    attack_entry,
    seed,
    group,
    x,
    ctx,
    defense_name=None,
    spent=None,
    mode="undefended",
    traces=None,
    cache_only=False,
):
    """x' (8-bit) for a batch, from the cache when every image is there, else by running the attack.

    ``spent`` (a timings dict) gets what happened: ``cache_hit:<mode>`` for a read, ``cache_wait:<mode>``
    for the time blocked while another worker made the same x', ``attack:<mode>`` for the attack run here.
    ``traces`` (a dict) gets the attack's objective per step of each image, by its index in the batch
    (kept with x' in the cache, so a test that reads x' reports the same curve). ``cache_only``: None
    instead of running the attack when x' is not in the cache.
    """
    spent = {} if spent is None else spent
    traces = {} if traces is None else traces
    start = time.perf_counter()
    attack = build_attack(
        attack_entry.name,
        codec,
        attack_entry.preset,
        attack_entry.objective,
        seed,
        attack_entry.proxy,
        dict(attack_entry.overrides),
    )
    names = [im.name for im in group]
    keys = [cache_key(codec, attack_entry, seed, im, names, defense_name) for im in group]

    clean = [_pixels(im) for im in x]

    def within_budget(i):
        """An entry is the attack's own result: within its budget of the clean image, and not the clean
        image itself (which the attack never caches: a cache restored from elsewhere can hold it)."""

        def check(pixels):
            if np.array_equal(pixels, clean[i]):
                return "is the clean image itself, not an attacked one"
            return attack.budget_violation(x[i : i + 1].cpu(), datasets.to_tensor([datasets.Image("", pixels)]))

        return check

    def from_cache():
        cached = [ctx.cache.get(k, within_budget(i)) for i, k in enumerate(keys)]
        if all(c is not None for c in cached):
            for i, key in enumerate(keys):
                trace = ctx.cache.trace(key)
                if trace:
                    traces[i] = trace
            return datasets.to_tensor([datasets.Image(im.name, c) for im, c in zip(group, cached)]).to(x.device)
        return None

    def add(step, since):
        now = time.perf_counter()
        spent[f"{step}:{mode}"] = spent.get(f"{step}:{mode}", 0.0) + now - since
        return now

    found = from_cache()
    if found is not None:
        add("cache_hit", start)
        return found
    if cache_only:
        return None
    holder = f"{os.environ.get('PYTEST_XDIST_WORKER', 'the main process')} ({ctx.running or 'a test'})"
    with ctx.cache.making(keys[0], holder) as lock:
        if lock.waited:  # another worker held the lock: it was making this x'
            spent[f"cache_wait:{mode}"] = spent.get(f"cache_wait:{mode}", 0.0) + lock.waited
            start = time.perf_counter()
        found = from_cache()  # made by another worker while this one waited (or just before it locked)
        if found is not None:
            add("cache_hit", start)
            return found
        x_adv = round_to_8bit(attack(x))  # an attacker delivers an 8-bit image file
        broken = set(non_finite_images(x_adv))  # NaN gradients: the round trip names these images
        curves = attack.image_traces()
        for i, (key, im) in enumerate(zip(keys, x_adv)):
            if curves:
                traces[i] = curves[i]
            pixels = _pixels(im)
            if i not in broken and not np.array_equal(pixels, clean[i]):  # an attack that moved no pixel: not cached
                ctx.cache.put(key, pixels, curves[i] if curves else None)
        add("attack", start)
        return x_adv


def _pixels(image) -> np.ndarray:
    """An image (3, H, W) in [0, 1] as the 8-bit (H, W, 3) array an image file holds."""
    return (image.permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")


def case_modes(codec, defense, draw_seed, eot_samples=4):
    """[(mode, codec attacked, codec measured, cache tag)] for a case, and the draws used."""
    modes = [("undefended", codec, codec, None)]
    if defense is None:
        return modes, {}
    from ..defenses.transforms import FRESH, DefendedCodec

    draw = defense.sample(torch.Generator().manual_seed(draw_seed))  # the secret draw, for x and x'
    defended = DefendedCodec(codec, defense, draw)
    if defense.random:  # the attacker cannot know the draw: EOT over fresh draws of its own
        attacked_codec = DefendedCodec(codec, defense, FRESH, eot_samples)
        tag = f"adaptive:{defense.name}:{sorted(vars(defense).items())}:eot{eot_samples}"
    else:
        attacked_codec = defended
        tag = f"adaptive:{defense.name}:{sorted(vars(defense).items())}"
    modes += [("non-adaptive", codec, defended, None), ("adaptive", attacked_codec, defended, tag)]
    return modes, {"draw": defense.describe(draw), "eot_samples": eot_samples if defense.random else 0}


def codec_record(codec) -> dict:
    info = codec.info
    return {
        "label": info.label,
        "architecture": info.architecture,
        "quality": info.quality,
        "weights": info.weights,
        "random_init": info.random_init,
        **info.details,
        "identity": codec.identity_digest(),
    }


_BATCH_INDEX = re.compile(r" for image\(s\) \[[\d, ]*\] of the batch")


def roundtrip_each(codec, x, bad: dict, what: str = "") -> dict:
    """{index: (x_hat, bpp)} for the images of ``x`` not in ``bad``; images the codec fails on join
    ``bad`` ({index: why}) with the codec's own reason (a NaN, the coder's range, a decoded image
    outside [0, 1]), prefixed with ``what`` was coded."""
    keep = [i for i in range(len(x)) if i not in bad]
    while keep:
        try:
            rt = codec.roundtrip(x[keep])
            return {i: (rt.x_hat[j], rt.bpp[j]) for j, i in enumerate(keep)}
        except NonFiniteError as exc:
            failed = {keep[j] for j in exc.images} or set(keep)
            reason = _BATCH_INDEX.sub("", str(exc)).removeprefix(f"codec {codec.label}: ")
            for i in failed:
                bad.setdefault(i, f"{what}: {reason}" if what else reason)
            keep = [i for i in keep if i not in failed]
    return {}


def codec_failure(display: str, bad: dict) -> NonFiniteError:
    """The error naming why the codec failed on the images in ``bad`` ({index: why}): its own reasons
    (a NaN, the entropy coder's range, a decoded image outside [0, 1]), never a generic one."""
    return NonFiniteError(f"codec {display}: {'; '.join(sorted(set(bad.values())))}", sorted(bad))


def image_key(image) -> tuple:
    return (image.name, image.pixels.shape, hashlib.sha256(image.pixels.tobytes()).hexdigest())


def stack(coded: dict, keep: list[int]) -> RoundTrip:
    return RoundTrip(torch.stack([coded[i][0] for i in keep]), [], torch.stack([coded[i][1] for i in keep]))


def on_target(target, group, x, x_adv, ctx):
    """(C(x), C(x'), m(x, C(x))) on a neural target codec: the clean side as every test of the worker has it."""
    coded, known = ctx.clean(target, group, x, {}, cached=True)
    return stack(coded, list(range(len(group)))), target.roundtrip(x_adv), known


def measure_case(case, codec, images, ctx, seeds, defense, out: dict, pictures: bool = True) -> None:
    """Attack (or fetch x') and measure every image of a case; fill ``out``.

    Batches are measured in parallel on CPU (:meth:`RunContext.map`); their rows are put into
    ``out["modes"][mode]["per_image"]`` in data-set order. Images the codec fails on are listed in
    ``out["errors"]`` (the others are still measured).
    """
    a_seed, d_seed = seeds
    names, draws = case_modes(codec, defense, d_seed, ctx.eot_samples)
    out["modes"] = {mode: {"per_image": []} for mode, *_ in names}
    out["errors"] = []
    if defense is not None:
        out["defense"] = {
            "name": defense.name,
            "random": defense.random,
            "reversible": defense.reversible,
            **draws,
            "seed": str(d_seed),
            "per_image": [],
        }
    timings = out.setdefault("timings", {})

    def work(group):
        mine = ctx.replica(codec)  # each thread measures with its own copy of the model
        modes, _ = case_modes(mine, defense, d_seed, ctx.eot_samples)
        return _measure_group(case, group, modes, ctx, a_seed, pictures)

    groups = list(batches(images, ctx.batch_size))
    with test_page.step(f"attack, encode + decode, metrics ({len(images)} images)", {}):
        done = ctx.map(work, groups, parallel=ctx.replicable(codec))
        spent_here: dict = {}
        for batch in done:
            for key, seconds in batch.spent.items():
                spent_here[key] = spent_here.get(key, 0.0) + seconds
        report_timings(spent_here)
    attached: dict = {}  # pictures per mode
    curves: dict = {mode: {} for mode in out["modes"]}  # {mode: {image: objective per step}}
    for group, batch in zip(groups, done):
        rows, keep, error = batch.rows, batch.keep, batch.error
        for key, seconds in batch.spent.items():
            timings[key] = timings.get(key, 0.0) + seconds
        for mode, mode_rows in rows.items():
            out["modes"][mode]["per_image"] += [{"image": group[i].name, **mode_rows[i]} for i in keep]
            curves[mode].update({group[i].name: batch.traces[mode][i] for i in keep if i in batch.traces.get(mode, {})})
        if "defense" in out and keep:
            out["defense"]["per_image"] += defense_cost(
                [rows["undefended"][i] | {"image": group[i].name} for i in keep],
                [rows["non-adaptive"][i] for i in keep],
            )
        for (title, mode), tensors in batch.shown:
            if attached.get(mode, 0) < ctx.keep_pictures:
                attached[mode] = attached.get(mode, 0) + 1
                test_page.attach_picture(title, test_page.picture_row(*tensors))
        if error is not None:  # this batch's failing images are named; the others were measured
            which = getattr(error, "images", None) or range(len(group))
            out["errors"].append({"images": [group[i].name for i in which], "error": f"{error.category}: {error}"})
    for mode, traces in curves.items():
        if traces:
            out["modes"][mode]["convergence"] = convergence.summary(traces, case.attack.objective)


@contextlib.contextmanager
def timed(key: str, timings: dict):
    """Adds the block's wall time to ``timings[key]`` (a key of :data:`STEPS`); no Allure call (threads)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start


@dataclass
class Measured:
    """What one batch of a case gave (made in a worker thread, read in the main one)."""

    rows: dict  # {mode: {image index: row}}
    keep: list  # images measured in every mode
    bad: dict  # images the codec failed on: {index: why}
    shown: list  # pictures to attach: ((title, mode), tensors)
    spent: dict  # timings
    error: CodecError | None
    traces: dict  # {mode: {image index: objective per step}}


def _measure_group(case, group, modes, ctx, seed, pictures) -> Measured:
    """Attack (or read x'), code and measure one batch in every mode of a case.

    Runs in a worker thread: no Allure calls here (the main thread attaches the pictures).
    """
    x = datasets.to_tensor(group).to(ctx.device)
    x_adv, clean, rows, shown, spent, traces = {}, {}, {}, [], {}, {}
    bad: dict = {}  # image index -> why the codec failed on it
    try:
        for mode, attack_codec, eval_codec, tag in modes:
            if tag not in x_adv:  # non-adaptive reuses the undefended x': no step of its own
                traces[tag] = {}
                x_adv[tag] = attacked(attack_codec, case.attack, seed, group, x, ctx, tag, spent, mode, traces[tag])
            traces[mode] = traces[tag]
            with timed(f"coding:{mode}", spent):
                if id(eval_codec) not in clean:
                    clean[id(eval_codec)] = ctx.clean(eval_codec, group, x, bad, cached=eval_codec is modes[0][2])
                adv = roundtrip_each(eval_codec, x_adv[tag], bad, f"x' ({mode})")
            keep = [i for i in range(len(group)) if i not in bad]
            if not keep:
                break
            ref, known = clean[id(eval_codec)]
            ref_rt, adv_rt = stack(ref, keep), stack(adv, keep)
            with timed(f"metrics:{mode}", spent):
                scores = {m: v[keep] for m, v in known.items()} if known else None
                rows[mode] = dict(zip(keep, evaluate(x[keep], x_adv[tag][keep], ref_rt, adv_rt, ctx.metrics, scores)))
            if pictures and ctx.pictures and mode in case.gated_modes:
                shown += [
                    ((f"{group[i].name} ({mode})", mode), (x[i], x_adv[tag][i], ref_rt.x_hat[j], adv_rt.x_hat[j]))
                    for j, i in enumerate(keep)
                ]
        if bad:
            raise codec_failure(case.codec.display, bad)
        error = None
    except CodecError as exc:
        error = exc
    keep = [i for i in range(len(group)) if i not in bad]  # an image failing in any mode is dropped from all
    return Measured(rows, keep, bad, shown, spent, error, {m: t for m, t in traces.items() if m in rows})


def load_subject(entry, dataset, ctx, result: dict):
    """(codec, images) of a case or worst case, loaded once per worker; the codec is recorded in ``result``."""
    with test_page.step(STEPS["load"], {}), timed("load", result["timings"]):
        codec = ctx.codec(entry)
        images = ctx.images(dataset)
    result["codec"] = codec_record(codec)
    test_page.describe_test(result["params"], codec.info)
    return codec, images


def finish_means(out: dict, gated_modes) -> None:
    """Means of every mode (and the defense's cost); the last gated mode's rows and means are the headline.
    Nothing to do before the modes exist (a failure before the first image)."""
    if "modes" not in out:
        return
    for block in out["modes"].values():
        block["mean"] = mean_of(block["per_image"])
    if out.get("defense"):
        out["defense"]["cost"] = mean_of(out["defense"]["per_image"])
    main = out["modes"][gated_modes[-1]]
    out["per_image"], out["mean"] = main["per_image"], main["mean"]


def raise_errors(name: str, out: dict) -> None:
    """After every image was tried: a CodecError naming the images that failed, if any did."""
    if out["errors"]:
        lines = [f"{', '.join(e['images'])}: {e['error']}" for e in out["errors"]]
        measured = len(next(iter(out["modes"].values()))["per_image"])
        raise CodecError(
            f"{name}: {sum(len(e['images']) for e in out['errors'])} image(s) failed, "
            f"{measured} measured (kept in the results):\n  " + "\n  ".join(lines)
        )


def case_key(case, seeds) -> tuple:
    return (case.suite, case.name, seeds)


def case_seeds(run_seed: int, case) -> tuple[int, int]:
    return attack_seed(run_seed, case), defense_seed(run_seed, case)
