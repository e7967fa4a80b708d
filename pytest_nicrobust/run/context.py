"""Per-worker state of a run: settings, loaded models and images, the clean side, the image threads.

One :class:`RunContext` per worker process (the ``nicrobust_context`` fixture builds it), so a
worker loads each model and data set once and codes each clean image once.
"""

from __future__ import annotations

import copy
import hashlib
import os
import queue
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from .. import datasets
from ..codecs import load_entry
from ..codecs.loading import use_cache_folder
from ..metrics.deltas import clean_scores
from .advcache import AdvCache, private_folder
from .measure import image_key, roundtrip_each, stack


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
    masking: str = "warn"  # --nicrobust-masking: a gradient-masking suspicion is a warning or a failure
    convergence: str = "warn"  # --nicrobust-convergence: an attack that had not converged, likewise
    cache: AdvCache = field(default_factory=lambda: AdvCache(None))
    running: str = ""  # the id of the test this worker runs now (named in the cache's lock files)
    max_codecs: int = 6  # models kept loaded per worker (a transfer test holds two)
    _codecs: OrderedDict = field(default_factory=OrderedDict)
    _images: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)  # case key -> per-image rows per mode (worst case reuses them)
    _clean: dict = field(default_factory=dict)  # (codec, images) -> C(x) and m(x, C(x)): the same in every test
    _pool: object = None
    _local: threading.local = field(default_factory=threading.local)
    _replicable: dict = field(default_factory=dict)
    # bitstream tests: where the run's results JSON goes (its findings are saved beside it), and
    # this worker's child process, which loads their codecs and decodes their streams
    json_path: str | None = None
    _child: object = None

    def child(self):
        """This worker's :class:`~pytest_nicrobust.child.Child` (started on first use, ended with the worker)."""
        if self._child is None:
            import atexit

            from ..child import Child

            self._child = Child("bitstream decoder")
            atexit.register(self._child.close)
        return self._child

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

    def clean(self, codec, group, x, bad: dict, cached: bool):
        """({index: (C(x), bpp)}, {metric: m(x, C(x))}) of a batch; computed once per worker for the bare codec."""
        key = (codec.identity_digest(), codec.device.type, tuple(image_key(im) for im in group)) if cached else None
        if key in self._clean:
            return self._clean[key]
        coded = roundtrip_each(codec, x, bad, "the clean image")
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
            self._codecs[entry] = load_entry(entry, self.device, self.search, self.run_seed)
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
    # Measured (README, Performance): on CPU batching does not pay; on a GPU it is essential.
    return 8 if device.startswith("cuda") else 1


def build_context(session) -> RunContext:
    """This worker's context: device (pinned GPU, or auto), threads, batch size, caches."""
    from .devices import cpu_count, image_workers, threads_per_process

    config = session.config
    device = config.getoption("nicrobust_device")
    if session.pinned_gpu is not None:
        device = "cuda"  # a pinned worker sees its one GPU as cuda:0
    elif device == "auto":
        device = default_device()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) if session.is_worker else 1
    parallel = 1
    if device.startswith("cuda"):  # batches on the GPU; the CPU share for coding and metrics
        gpus = getattr(config, "workerinput", {}).get("nicrobust_gpus") or session.visible_gpus()
        torch.set_num_threads(threads_per_process(gpus, cpu_count()))
    else:  # one torch thread per image, the same numbers whatever -n is; images in parallel
        torch.set_num_threads(1)
        parallel = config.getoption("nicrobust_threads") or image_workers(cpu_count(), workers)
    folder = cache_dir(config)
    use_cache_folder(folder)  # codec kinds keep derived files there too (JPEG AI's random weights)
    return RunContext(
        cache=AdvCache(folder),
        device=device,
        batch_size=config.getoption("nicrobust_batch_size") or default_batch_size(device),
        metrics=session.metrics,
        data_root=config.getoption("nicrobust_data"),
        cityscapes_root=config.getoption("nicrobust_cityscapes"),
        thresholds=session.thresholds,
        run_seed=config.getoption("nicrobust_seed"),
        eot_samples=config.getoption("nicrobust_eot_samples"),
        search=(str(config.rootpath),),
        baseline=session.baseline,
        compare_fail=session.compare_fail,
        masking=config.getoption("nicrobust_masking"),
        convergence=config.getoption("nicrobust_convergence"),
        image_workers=parallel,
        pictures=bool(getattr(config.option, "allure_report_dir", None)),
        json_path=config.getoption("nicrobust_json"),
    )


def cache_dir(config) -> str | None:
    """Shared by xdist workers: the pytest cache directory, or a private per-user folder without one."""
    if config.getoption("nicrobust_cache"):
        return config.getoption("nicrobust_cache")
    if getattr(config, "cache", None) is not None:
        return str(config.cache.mkdir("nicrobust"))
    tag = hashlib.sha256(str(config.rootpath).encode()).hexdigest()[:12]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return private_folder(os.path.join(base, "pytest-nicrobust", tag))
