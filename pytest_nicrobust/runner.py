"""Runs one robustness case: load, attack, encode, measure, gate.

The plugin calls :func:`run_case` from inside the test item; everything measured is put into
``result`` as it is computed, so a failure half-way keeps the images done, and an image the codec
fails on is named while the others are still measured.

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

from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from . import CodecError, datasets, report
from .advcache import AdvCache, cache_key
from .attacks import build_attack
from .codecs import load_entry
from .codecs.base import NonFiniteError, RoundTrip, non_finite_images, round_to_8bit
from .evaluate import defense_cost, evaluate, mean_of
from .gates import conclude
from .seeding import attack_seed, defense_seed
from .thresholds import match_labels


@dataclass
class RunContext:
    """Per-worker state: settings plus caches so a worker loads each model and data set once."""

    device: str
    batch_size: int
    metrics: tuple
    data_root: str | None
    cityscapes_root: str | None
    thresholds: object
    run_seed: int = 0
    keep_pictures: int = 4
    eot_samples: int = 4
    search: tuple = ()  # folders an import-path codec is imported from
    baseline: object = None  # a baseline.Baseline with --nicrobust-compare
    compare_fail: dict = field(default_factory=dict)  # allowed changes from --nicrobust-compare-fail
    cache: AdvCache = field(default_factory=lambda: AdvCache(None))
    max_codecs: int = 3  # a transfer test holds its source and its target
    _codecs: OrderedDict = field(default_factory=OrderedDict)
    _images: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)  # case key -> per-image rows per mode (worst case reuses them)

    def codec(self, entry):
        if entry not in self._codecs:
            while len(self._codecs) >= self.max_codecs:
                self._codecs.popitem(last=False)
            self._codecs[entry] = load_entry(entry, self.device, self.search)
        self._codecs.move_to_end(entry)
        return self._codecs[entry]

    def images(self, entry):
        key = (entry.name, entry.path, entry.images, entry.crop)
        if key not in self._images:
            folder = datasets.dataset_folder(entry.name, entry.path, self.data_root, self.cityscapes_root)
            self._images[key] = datasets.load_dataset(entry.name, folder, entry.images, entry.crop, self.metrics)
        return self._images[key]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_batch_size(device: str) -> int:
    # Measured (DESIGN §3): on CPU batching does not pay; on a GPU it is essential.
    return 8 if device.startswith("cuda") else 1


def batches(images, size):
    """Groups of at most ``size`` images of equal shape, in data-set order."""
    by_shape: dict = {}
    for im in images:
        by_shape.setdefault(im.pixels.shape, []).append(im)
    for group in by_shape.values():
        for i in range(0, len(group), size):
            yield group[i:i + size]


def attacked(codec, attack_entry, seed, group, x, ctx, defense_name=None):
    """x' (8-bit) for a batch, from the cache when every image is there, else by running the attack."""
    attack = build_attack(attack_entry.name, codec, attack_entry.preset, attack_entry.objective, seed,
                          attack_entry.proxy, dict(attack_entry.overrides))
    names = [im.name for im in group]
    keys = [cache_key(codec, attack_entry, seed, im, names, defense_name) for im in group]

    def within_budget(i):
        return lambda pixels: attack.budget_violation(x[i:i + 1].cpu(), datasets.to_tensor([datasets.Image("", pixels)]))

    cached = [ctx.cache.get(k, within_budget(i)) for i, k in enumerate(keys)]
    if all(c is not None for c in cached):
        return datasets.to_tensor([datasets.Image(im.name, c) for im, c in zip(group, cached)]).to(x.device)
    x_adv = round_to_8bit(attack(x))  # an attacker delivers an 8-bit image file
    broken = set(non_finite_images(x_adv))  # NaN gradients: the round trip names these images
    for i, (key, im) in enumerate(zip(keys, x_adv)):
        if i not in broken:
            ctx.cache.put(key, (im.permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8"))
    return x_adv


def case_modes(codec, defense, draw_seed, eot_samples=4):
    """[(mode, codec attacked, codec measured, cache tag)] for a case, and the draws used."""
    modes = [("undefended", codec, codec, None)]
    if defense is None:
        return modes, {}
    from .defenses import FRESH, DefendedCodec

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
    return {"label": info.label, "architecture": info.architecture, "quality": info.quality,
            "weights": info.weights, "random_init": info.random_init, **info.details,
            "identity": codec.identity_digest()}


def _roundtrip_each(codec, x, bad: set) -> dict:
    """{index: (x_hat, bpp)} for the images of ``x`` not in ``bad``; images the codec fails on join ``bad``."""
    keep = [i for i in range(len(x)) if i not in bad]
    while keep:
        try:
            rt = codec.roundtrip(x[keep])
            return {i: (rt.x_hat[j], rt.bpp[j]) for j, i in enumerate(keep)}
        except NonFiniteError as exc:
            failed = {keep[j] for j in exc.images} or set(keep)
            bad |= failed
            keep = [i for i in keep if i not in failed]
    return {}


def _stack(coded: dict, keep: list[int]) -> RoundTrip:
    return RoundTrip(torch.stack([coded[i][0] for i in keep]), [], torch.stack([coded[i][1] for i in keep]))


def measure_case(case, codec, images, ctx, seeds, defense, out: dict, pictures: bool = True) -> None:
    """Attack (or fetch x') and measure every image of a case; fill ``out`` as it goes.

    ``out["modes"][mode]["per_image"]`` grows image by image; images the codec fails on are
    listed in ``out["errors"]`` (the others are still measured).
    """
    a_seed, d_seed = seeds
    modes, draws = case_modes(codec, defense, d_seed, ctx.eot_samples)
    out["modes"] = {mode: {"per_image": []} for mode, *_ in modes}
    out["errors"] = []
    if defense is not None:
        out["defense"] = {"name": defense.name, "random": defense.random, "reversible": defense.reversible,
                          **draws, "seed": d_seed, "per_image": []}
    timings = out.setdefault("timings", {})
    for group in batches(images, ctx.batch_size):
        x = datasets.to_tensor(group).to(ctx.device)
        try:
            _measure_group(case, group, x, modes, ctx, a_seed, out, timings, pictures)
        except CodecError as exc:  # this batch's images are named; the next batch is still measured
            which = getattr(exc, "images", None) or range(len(group))
            out["errors"].append({"images": [group[i].name for i in which], "error": f"{exc.category}: {exc}"})


def _measure_group(case, group, x, modes, ctx, seed, out, timings, pictures):
    x_adv, clean, rows, bad = {}, {}, {}, set()
    for mode, attack_codec, eval_codec, tag in modes:
        with report.step(f"attack ({mode})", timings):
            if tag not in x_adv:
                x_adv[tag] = attacked(attack_codec, case.attack, seed, group, x, ctx, tag)
        with report.step(f"encode + decode ({mode})", timings):
            if id(eval_codec) not in clean:
                clean[id(eval_codec)] = _roundtrip_each(eval_codec, x, bad)
            adv = _roundtrip_each(eval_codec, x_adv[tag], bad)
        keep = [i for i in range(len(group)) if i not in bad]
        if not keep:
            break
        ref, adv = _stack(clean[id(eval_codec)], keep), _stack(adv, keep)
        with report.step(f"metrics ({mode})", timings):
            rows[mode] = dict(zip(keep, evaluate(x[keep], x_adv[tag][keep], ref, adv, ctx.metrics)))
        if pictures and mode in case.gated_modes:
            for j, i in enumerate(keep):
                if len(out["modes"][mode]["per_image"]) + j < ctx.keep_pictures:
                    report.attach_picture(f"{group[i].name} ({mode})", report.picture_row(
                        x[i], x_adv[tag][i], ref.x_hat[j], adv.x_hat[j]))
    keep = [i for i in range(len(group)) if i not in bad]  # an image failing in any mode is dropped from all
    for mode, mode_rows in rows.items():
        out["modes"][mode]["per_image"] += [{"image": group[i].name, **mode_rows[i]} for i in keep]
    if "defense" in out and keep:
        out["defense"]["per_image"] += defense_cost([rows["undefended"][i] | {"image": group[i].name} for i in keep],
                                                    [rows["non-adaptive"][i] for i in keep])
    if bad:
        raise NonFiniteError(f"codec {case.codec.display} gives NaN or infinite values", sorted(bad))


def finish_means(out: dict) -> None:
    for block in out["modes"].values():
        block["mean"] = mean_of(block["per_image"])
    if out.get("defense"):
        out["defense"]["cost"] = mean_of(out["defense"]["per_image"])


def raise_errors(name: str, out: dict) -> None:
    """After every image was tried: a CodecError naming the images that failed, if any did."""
    if out["errors"]:
        lines = [f"{', '.join(e['images'])}: {e['error']}" for e in out["errors"]]
        measured = len(next(iter(out["modes"].values()))["per_image"])
        raise CodecError(f"{name}: {sum(len(e['images']) for e in out['errors'])} image(s) failed, "
                         f"{measured} measured (kept in the results):\n  " + "\n  ".join(lines))


def case_key(case, seeds) -> tuple:
    return (case.suite, case.name, seeds)


def case_seeds(run_seed: int, case) -> tuple[int, int]:
    return attack_seed(run_seed, case), defense_seed(run_seed, case)


def run_case(case, ctx: RunContext, result: dict, defense=None) -> None:
    """Fill ``result`` (a plain dict carried to the controller) and raise GateFailure on a passed limit."""
    params = case.parameters
    seeds = case_seeds(ctx.run_seed, case)
    result.update(kind="case", params=params, attack_params=case.attack.params, seed=seeds[0], timings={})
    with report.step("load codec and images", result["timings"]):
        codec = ctx.codec(case.codec)
        images = ctx.images(case.dataset)
    result["codec"] = codec_record(codec)
    report.describe_test(params, codec.info)
    measure_case(case, codec, images, ctx, seeds, defense, result)
    main = result["modes"][case.gated_modes[-1]]
    result["per_image"] = main["per_image"]
    finish_means(result)
    result["mean"] = main["mean"]
    raise_errors(case.name, result)
    ctx.measured[case_key(case, seeds)] = {m: b["per_image"] for m, b in result["modes"].items()}
    conclude(case.name, result, gate_modes(result, case.gated_modes, ctx))


def gate_modes(result: dict, modes, ctx) -> list:
    """The limits of thresholds.toml on each gated mode, then the allowed changes against the baseline."""
    from .baseline import compare
    from .gates import check

    gates = []
    for mode in modes:
        means = result["mean"] if mode == "transfer" else result["modes"][mode]["mean"]
        limits = ctx.thresholds.limits_for(match_labels(result["params"], mode))
        gates += check(means, limits, mode, "transfer_" if mode == "transfer" else "")
    return gates + compare(result, modes, ctx.thresholds, ctx.baseline, ctx.compare_fail)
