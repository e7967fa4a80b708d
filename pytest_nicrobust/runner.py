"""Runs one robustness case: load, attack, encode, measure, gate.

The plugin calls :func:`run_case` from inside the test item; everything measured is
put into ``result`` as it is computed, so a failure half-way keeps the images done.

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

import os
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from . import datasets, report
from .advcache import AdvCache, cache_key
from .attacks import build_attack
from .codecs import load_codec
from .codecs.base import round_to_8bit
from .evaluate import defense_cost, evaluate, mean_of
from .gates import GateFailure, check, failure_message
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
    keep_pictures: int = 4
    eot_samples: int = 4
    cache: AdvCache = field(default_factory=lambda: AdvCache(None))
    max_codecs: int = 3  # a transfer test holds its source and its target
    _codecs: OrderedDict = field(default_factory=OrderedDict)
    _images: dict = field(default_factory=dict)

    def codec(self, entry, base_dir):
        key = (entry.label, entry.model, entry.weights, entry.quality)
        if key not in self._codecs:
            while len(self._codecs) >= self.max_codecs:
                self._codecs.popitem(last=False)
            self._codecs[key] = load_codec(entry.model, entry.weights, entry.quality, self.device, entry.label, base_dir)
        self._codecs.move_to_end(key)
        return self._codecs[key]

    def images(self, entry):
        key = (entry.name, entry.path, entry.images, entry.crop)
        if key not in self._images:
            folder = datasets.dataset_folder(entry.name, entry.path, self.data_root, self.cityscapes_root)
            self._images[key] = datasets.load_dataset(entry.name, folder, entry.images, entry.crop)
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
    keys = [cache_key(codec.info, attack_entry, seed, im, defense_name, codec.device.type) for im in group]
    cached = [ctx.cache.get(k) for k in keys]
    if all(c is not None for c in cached):
        return datasets.to_tensor([datasets.Image(im.name, c) for im, c in zip(group, cached)]).to(x.device)
    attack = build_attack(attack_entry.name, codec, attack_entry.preset, attack_entry.objective, seed,
                          attack_entry.proxy, dict(attack_entry.overrides))
    x_adv = round_to_8bit(attack(x))  # an attacker delivers an 8-bit image file
    for key, im in zip(keys, x_adv):
        ctx.cache.put(key, (im.permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8"))
    return x_adv


def case_modes(codec, defense, defense_seed, eot_samples=4):
    """[(mode, codec attacked, codec measured, cache tag)] for a case, and the draws used."""
    modes = [("undefended", codec, codec, None)]
    if defense is None:
        return modes, {}
    from .defenses import FRESH, DefendedCodec

    draw = defense.sample(torch.Generator().manual_seed(defense_seed))  # the secret draw, for x and x'
    defended = DefendedCodec(codec, defense, draw)
    if defense.random:  # the attacker cannot know the draw: EOT over fresh draws of its own
        attacked = DefendedCodec(codec, defense, FRESH, eot_samples)
        tag = f"adaptive:{defense.name}:{sorted(vars(defense).items())}:eot{eot_samples}"
    else:
        attacked = defended
        tag = f"adaptive:{defense.name}:{sorted(vars(defense).items())}"
    modes += [("non-adaptive", codec, defended, None), ("adaptive", attacked, defended, tag)]
    return modes, {"draw": defense.describe(draw), "eot_samples": eot_samples if defense.random else 0}


def codec_record(info) -> dict:
    return {"label": info.label, "architecture": info.architecture, "quality": info.quality,
            "weights": info.weights, "random_init": info.random_init, **info.details}


def run_case(case, ctx: RunContext, seed: int, result: dict, defense=None, defense_seed: int = 0) -> None:
    """Fill ``result`` (a plain dict carried to the controller) and raise GateFailure on a passed limit."""
    base_dir = os.path.dirname(os.path.abspath(case.suite))
    params = case.parameters
    result.update(kind="case", params=params, seed=seed, per_image=[], timings={}, modes={})
    timings = result["timings"]
    with report.step("load codec and images", timings):
        codec = ctx.codec(case.codec, base_dir)
        images = ctx.images(case.dataset)
    result["codec"] = codec_record(codec.info)
    report.describe_test(params, codec.info)
    modes, draws = case_modes(codec, defense, defense_seed, ctx.eot_samples)
    gated = ["undefended"] if defense is None else ["non-adaptive", "adaptive"]
    if defense is not None:
        result["defense"] = {"name": defense.name, "random": defense.random, "reversible": defense.reversible,
                             **draws, "seed": defense_seed, "per_image": []}
    records = {mode: [] for mode, *_ in modes}
    for group in batches(images, ctx.batch_size):
        x = datasets.to_tensor(group).to(ctx.device)
        x_adv, clean = {}, {}
        for mode, attack_codec, eval_codec, tag in modes:
            with report.step(f"attack ({mode})", timings):
                if tag not in x_adv:
                    x_adv[tag] = attacked(attack_codec, case.attack, seed, group, x, ctx, tag)
            with report.step(f"encode + decode ({mode})", timings):
                if id(eval_codec) not in clean:
                    clean[id(eval_codec)] = eval_codec.roundtrip(x)
                adv = eval_codec.roundtrip(x_adv[tag])
            with report.step(f"metrics ({mode})", timings):
                rows = evaluate(x, x_adv[tag], clean[id(eval_codec)], adv, ctx.metrics)
            for i, (image, row) in enumerate(zip(group, rows)):
                records[mode].append({"image": image.name, **row})
                if len(records[mode]) <= ctx.keep_pictures and mode in gated:
                    report.attach_picture(f"{image.name} ({mode})", report.picture_row(
                        x[i], x_adv[tag][i], clean[id(eval_codec)].x_hat[i], adv.x_hat[i]))
        if defense is not None:
            result["defense"]["per_image"] += defense_cost(records["undefended"][-len(group):],
                                                           records["non-adaptive"][-len(group):])
    for mode, rows in records.items():
        result["modes"][mode] = {"per_image": rows, "mean": mean_of(rows)}
    main = result["modes"][gated[-1]]
    result["per_image"], result["mean"] = main["per_image"], main["mean"]
    if defense is not None:
        result["defense"]["cost"] = mean_of(result["defense"]["per_image"])
    gates = []
    for mode in gated:
        limits = ctx.thresholds.limits_for(match_labels(params, mode))
        gates += check(result["modes"][mode]["mean"], limits, mode)
    conclude(case.name, result, gates)


def conclude(test_name: str, result: dict, gates: list) -> None:
    """Record and attach the gates; raise GateFailure (after attaching why) if one was passed."""
    result["gates"] = [g.as_dict() for g in gates]
    report.attach_metric_table(result, gates)
    if not all(g.passed for g in gates):
        message = failure_message(test_name, len(result["per_image"]), gates)
        report.attach_text("why it failed", message)
        raise GateFailure(message)
