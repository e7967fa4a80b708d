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

import contextlib
import copy
import hashlib
import queue
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from . import CodecError, datasets, report
from .advcache import AdvCache, cache_key
from .attacks import build_attack
from .codecs import load_entry
from .codecs.base import NonFiniteError, RoundTrip, non_finite_images, round_to_8bit
from .evaluate import clean_scores, defense_cost, evaluate, mean_of
from .baseline import compare
from .gates import check, conclude
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
    image_workers: int = 1  # batches measured at once (CPU threads, one torch thread each)
    pictures: bool = False  # attach picture rows (Allure is on)
    baseline: object = None  # a baseline.Baseline with --nicrobust-compare
    compare_fail: dict = field(default_factory=dict)  # allowed changes from --nicrobust-compare-fail
    cache: AdvCache = field(default_factory=lambda: AdvCache(None))
    max_codecs: int = 6  # models kept loaded per worker (a transfer test holds two)
    _codecs: OrderedDict = field(default_factory=OrderedDict)
    _images: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)  # case key -> per-image rows per mode (worst case reuses them)
    _clean: dict = field(default_factory=dict)  # (codec, images) -> C(x) and m(x, C(x)): the same in every test
    _pool: object = None
    _local: threading.local = field(default_factory=threading.local)
    _replicable: dict = field(default_factory=dict)

    def map(self, fn, items: list, parallel: bool = True) -> list:
        """``[fn(item)]`` in order; on ``image_workers`` threads when there is more than one item."""
        if not parallel or self.image_workers <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ImagePool(self.image_workers)
        return self._pool.map(fn, items)

    def replicable(self, codec) -> bool:
        """Whether each thread can have its own copy of ``codec`` (else its batches run one by one)."""
        if codec not in self._replicable:
            try:
                copy.deepcopy(codec)
                self._replicable[codec] = True
            except Exception:  # an external codec holding a native handle, a lock, ...
                self._replicable[codec] = False
        return self._replicable[codec]

    def replica(self, codec):
        """This thread's copy of ``codec`` (the codec itself on the main thread)."""
        if threading.current_thread() is threading.main_thread():
            return codec
        copies = self._local.__dict__.setdefault("codecs", weakref.WeakKeyDictionary())
        if codec not in copies:
            copies[codec] = copy.deepcopy(codec)
        return copies[codec]

    def clean(self, codec, group, x, bad: set, cached: bool):
        """({index: (C(x), bpp)}, {metric: m(x, C(x))}) of a batch; computed once per worker for the bare codec."""
        key = (codec.identity_digest(), codec.device.type, tuple(_image_key(im) for im in group)) if cached else None
        if key in self._clean:
            return self._clean[key]
        coded = _roundtrip_each(codec, x, bad)
        known = None
        if len(coded) == len(group):
            known = clean_scores(x, stack(coded, list(range(len(group)))), self.metrics)
            if key is not None:
                self._clean[key] = (coded, known)
        return coded, known

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


class ImagePool:
    """Daemon threads measuring a test's batches in parallel. Not concurrent.futures: its threads are
    joined at exit, and a batch stuck past the time limit would then hang the process."""

    def __init__(self, workers: int):
        self.jobs: queue.Queue = queue.Queue()
        for k in range(workers):
            threading.Thread(target=self._serve, name=f"nicrobust-image-{k}", daemon=True).start()

    def _serve(self):
        while True:
            fn, item, slot, done, cancelled = self.jobs.get()
            if not cancelled.is_set():
                try:
                    slot.append((True, fn(item)))
                except BaseException as exc:  # handed to the caller
                    slot.append((False, exc))
            done.release()

    def map(self, fn, items: list) -> list:
        cancelled, done, slots = threading.Event(), threading.Semaphore(0), [[] for _ in items]
        for item, slot in zip(items, slots):
            self.jobs.put((fn, item, slot, done, cancelled))
        try:
            for _ in items:
                done.acquire()
        except BaseException:  # the time limit: the batches not started are dropped
            cancelled.set()
            raise
        for slot in slots:
            if not slot[0][0]:
                raise slot[0][1]
        return [slot[0][1] for slot in slots]


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

    def from_cache():
        cached = [ctx.cache.get(k, within_budget(i)) for i, k in enumerate(keys)]
        if all(c is not None for c in cached):
            return datasets.to_tensor([datasets.Image(im.name, c) for im, c in zip(group, cached)]).to(x.device)
        return None

    found = from_cache()
    if found is not None:
        return found
    with ctx.cache.making(keys[0]):
        found = from_cache()  # another worker may have made it while this one waited
        if found is not None:
            return found
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


def _image_key(image) -> tuple:
    return (image.name, image.pixels.shape, hashlib.sha256(image.pixels.tobytes()).hexdigest())


def stack(coded: dict, keep: list[int]) -> RoundTrip:
    return RoundTrip(torch.stack([coded[i][0] for i in keep]), [], torch.stack([coded[i][1] for i in keep]))


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
        out["defense"] = {"name": defense.name, "random": defense.random, "reversible": defense.reversible,
                          **draws, "seed": d_seed, "per_image": []}
    timings = out.setdefault("timings", {})

    def work(group):
        mine = ctx.replica(codec)  # each thread measures with its own copy of the model
        modes, _ = case_modes(mine, defense, d_seed, ctx.eot_samples)
        return _measure_group(case, group, modes, ctx, a_seed, pictures)

    groups = list(batches(images, ctx.batch_size))
    with report.step(f"attack, encode + decode, metrics ({len(images)} images)", {}):
        done = ctx.map(work, groups, parallel=ctx.replicable(codec))
    attached: dict = {}  # pictures per mode
    for group, (rows, keep, bad, shown, spent, error) in zip(groups, done):
        for key, seconds in spent.items():
            timings[key] = timings.get(key, 0.0) + seconds
        for mode, mode_rows in rows.items():
            out["modes"][mode]["per_image"] += [{"image": group[i].name, **mode_rows[i]} for i in keep]
        if "defense" in out and keep:
            out["defense"]["per_image"] += defense_cost(
                [rows["undefended"][i] | {"image": group[i].name} for i in keep], [rows["non-adaptive"][i] for i in keep])
        for (title, mode), tensors in shown:
            if attached.get(mode, 0) < ctx.keep_pictures:
                attached[mode] = attached.get(mode, 0) + 1
                report.attach_picture(title, report.picture_row(*tensors))
        if error is not None:  # this batch's failing images are named; the others were measured
            which = getattr(error, "images", None) or range(len(group))
            out["errors"].append({"images": [group[i].name for i in which], "error": f"{error.category}: {error}"})


@contextlib.contextmanager
def _timed(title: str, timings: dict):
    start = time.perf_counter()
    yield
    timings[title] = timings.get(title, 0.0) + time.perf_counter() - start


def _measure_group(case, group, modes, ctx, seed, pictures):
    """(rows per mode, images kept, images failed, pictures, timings, CodecError or None) of one batch.

    Runs in a worker thread: no Allure calls here (the main thread attaches the pictures).
    """
    x = datasets.to_tensor(group).to(ctx.device)
    x_adv, clean, rows, bad, shown, spent = {}, {}, {}, set(), [], {}
    try:
        for mode, attack_codec, eval_codec, tag in modes:
            with _timed(f"attack ({mode})", spent):
                if tag not in x_adv:
                    x_adv[tag] = attacked(attack_codec, case.attack, seed, group, x, ctx, tag)
            with _timed(f"encode + decode ({mode})", spent):
                if id(eval_codec) not in clean:
                    clean[id(eval_codec)] = ctx.clean(eval_codec, group, x, bad, cached=eval_codec is modes[0][2])
                adv = _roundtrip_each(eval_codec, x_adv[tag], bad)
            keep = [i for i in range(len(group)) if i not in bad]
            if not keep:
                break
            ref, known = clean[id(eval_codec)]
            ref_rt, adv_rt = stack(ref, keep), stack(adv, keep)
            with _timed(f"metrics ({mode})", spent):
                scores = {m: v[keep] for m, v in known.items()} if known else None
                rows[mode] = dict(zip(keep, evaluate(x[keep], x_adv[tag][keep], ref_rt, adv_rt, ctx.metrics, scores)))
            if pictures and ctx.pictures and mode in case.gated_modes:
                shown += [((f"{group[i].name} ({mode})", mode), (x[i], x_adv[tag][i], ref_rt.x_hat[j], adv_rt.x_hat[j]))
                          for j, i in enumerate(keep)]
        if bad:
            raise NonFiniteError(f"codec {case.codec.display} gives NaN or infinite values", sorted(bad))
        error = None
    except CodecError as exc:
        error = exc
    keep = [i for i in range(len(group)) if i not in bad]  # an image failing in any mode is dropped from all
    return rows, keep, bad, shown, spent, error


def load_subject(entry, dataset, ctx, result: dict):
    """(codec, images) of a case or worst case, loaded once per worker; the codec is recorded in ``result``."""
    with report.step("load codec and images", result["timings"]):
        codec = ctx.codec(entry)
        images = ctx.images(dataset)
    result["codec"] = codec_record(codec)
    report.describe_test(result["params"], codec.info)
    return codec, images


def finish_means(out: dict, gated_modes) -> None:
    """Means of every mode (and the defense's cost); the last gated mode's rows and means are the headline."""
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
        raise CodecError(f"{name}: {sum(len(e['images']) for e in out['errors'])} image(s) failed, "
                         f"{measured} measured (kept in the results):\n  " + "\n  ".join(lines))


def case_key(case, seeds) -> tuple:
    return (case.suite, case.name, seeds)


def case_seeds(run_seed: int, case) -> tuple[int, int]:
    return attack_seed(run_seed, case), defense_seed(run_seed, case)


def run_case(case, ctx: RunContext, result: dict, defense=None) -> None:
    """Fill ``result`` (a plain dict carried to the controller) and raise GateFailure on a passed limit."""
    seeds = case_seeds(ctx.run_seed, case)
    result.update(kind="case", params=case.parameters, attack_params=case.attack.params, seed=seeds[0], timings={})
    codec, images = load_subject(case.codec, case.dataset, ctx, result)
    measure_case(case, codec, images, ctx, seeds, defense, result)
    finish_means(result, case.gated_modes)
    raise_errors(case.name, result)
    ctx.measured[case_key(case, seeds)] = {m: b["per_image"] for m, b in result["modes"].items()}
    conclude(case.name, result, gate_modes(result, case.gated_modes, ctx))


def gate_modes(result: dict, modes, ctx) -> list:
    """The limits of thresholds.toml on each gated mode, then the allowed changes against the baseline."""
    gates = []
    for mode in modes:
        means = result["mean"] if mode == "transfer" else result["modes"][mode]["mean"]
        limits = ctx.thresholds.limits_for(match_labels(result["params"], mode))
        gates += check(means, limits, mode, "transfer_" if mode == "transfer" else "")
    return gates + compare(result, modes, ctx.thresholds, ctx.baseline, ctx.compare_fail)
