"""Runs one robustness case: load, attack, encode, measure, gate.

The plugin calls :func:`run_case` from inside the test item; everything measured is
put into ``result`` as it is computed, so a failure half-way keeps the images done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from . import datasets, report
from .attacks import build_attack
from .codecs import load_codec
from .codecs.base import round_to_8bit
from .evaluate import evaluate, mean_of
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
    _codecs: dict = field(default_factory=dict)
    _images: dict = field(default_factory=dict)

    def codec(self, entry, base_dir):
        key = (entry.label, entry.model, entry.weights, entry.quality)
        if key not in self._codecs:
            self._codecs.clear()  # one model at a time: items are grouped by model under xdist
            self._codecs[key] = load_codec(entry.model, entry.weights, entry.quality, self.device, entry.label, base_dir)
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


def run_case(case, ctx: RunContext, seed: int, result: dict) -> None:
    """Fill ``result`` (a plain dict carried to the controller) and raise GateFailure on a passed limit."""
    base_dir = os.path.dirname(os.path.abspath(case.suite))
    params = case.parameters
    result.update(params=params, seed=seed, per_image=[], timings={})
    timings = result["timings"]
    with report.step("load codec and images", timings):
        codec = ctx.codec(case.codec, base_dir)
        images = ctx.images(case.dataset)
    info = codec.info
    result["codec"] = {"label": info.label, "architecture": info.architecture, "quality": info.quality,
                       "weights": info.weights, "random_init": info.random_init, **info.details}
    report.describe_test(params, info)
    attack = build_attack(case.attack.name, codec, case.attack.preset, case.attack.objective, seed,
                          case.attack.proxy, dict(case.attack.overrides))
    for group in batches(images, ctx.batch_size):
        x = datasets.to_tensor(group).to(ctx.device)
        with report.step("attack", timings):
            x_adv = round_to_8bit(attack(x))  # an attacker delivers an 8-bit image file
        with report.step("encode + decode", timings):
            clean, adv = codec.roundtrip(x), codec.roundtrip(x_adv)
        with report.step("metrics", timings):
            rows = evaluate(x, x_adv, clean, adv, ctx.metrics)
        for i, (image, row) in enumerate(zip(group, rows)):
            result["per_image"].append({"image": image.name, **row})
            if len(result["per_image"]) <= ctx.keep_pictures:
                report.attach_picture(image.name, report.picture_row(x[i], x_adv[i], clean.x_hat[i], adv.x_hat[i]))
    result["mean"] = mean_of(result["per_image"])
    limits = ctx.thresholds.limits_for(match_labels(params))
    gates = check(result["mean"], limits)
    result["gates"] = [g.as_dict() for g in gates]
    report.attach_metric_table(result["per_image"], result["mean"], gates)
    if not all(g.passed for g in gates):
        message = failure_message(case.name, len(result["per_image"]), gates)
        report.attach_text("why it failed", message)
        raise GateFailure(message)
