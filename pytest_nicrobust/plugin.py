"""pytest entry point: options, configuration checks, collection of suite files, fixtures, results.

No torch import at module import: ``pytest --help`` and unrelated test runs stay fast. The work
of a test happens in :mod:`pytest_nicrobust.runner` (and ``transfer``, ``worst_case``), imported
when the first case runs; run-level files are written by :mod:`pytest_nicrobust.outputs`.
"""

from __future__ import annotations

import json
import os

import pytest

from . import NicrobustError
from .defenses_registry import BUILTIN, fixture_name
from .suite import Case, WorstCase, parse_suite
from .transfer import TransferCase, transfer_cases

RESULT_KEY = "nicrobust_result"
_SETTINGS = pytest.StashKey[dict]()
_RESULT = pytest.StashKey[dict]()
_PINNED = pytest.StashKey[str]()  # the physical GPU this worker was pinned to


# -- options -----------------------------------------------------------------

def pytest_addoption(parser):
    group = parser.getgroup("nicrobust", "neural image codec robustness (pytest-nicrobust)")
    group.addoption("--nicrobust-data", metavar="DIR", default=os.environ.get("NICROBUST_DATA"),
                    help="folder holding kodak/, bsds/, nips2017/ (env NICROBUST_DATA)")
    group.addoption("--nicrobust-cityscapes", metavar="DIR", default=os.environ.get("NICROBUST_CITYSCAPES"),
                    help="your Cityscapes images, e.g. leftImg8bit/val (env NICROBUST_CITYSCAPES)")
    group.addoption("--nicrobust-thresholds", metavar="PATH", default=None,
                    help="limits file (default: thresholds.toml in the rootdir, else the plugin's own limits)")
    group.addoption("--nicrobust-json", metavar="PATH", default=None,
                    help="write every test's per-image and mean values to this JSON file")
    group.addoption("--nicrobust-seed", type=int, default=0,
                    help="run seed; each test derives its own seed from it and its id (default 0)")
    group.addoption("--nicrobust-device", default="auto",
                    help="cpu, cuda, cuda:1 ... (default: cuda if available; under xdist one GPU per worker)")
    group.addoption("--nicrobust-threads", type=int, default=None,
                    help="on CPU, images measured in parallel per process, one torch thread each "
                         "(default: cores per xdist worker); the numbers do not depend on it")
    group.addoption("--nicrobust-batch-size", type=int, default=None,
                    help="images per attack batch (default: 1 on CPU, 8 on CUDA)")
    group.addoption("--nicrobust-metrics", default="psnr,mse,msssim,vmaf",
                    help="comma-separated full-reference metrics to compute (default: all)")
    group.addoption("--nicrobust-heavy", action="store_true",
                    help="also run cases marked heavy (full data sets); they are deselected otherwise")
    group.addoption("--nicrobust-eot-samples", type=int, default=4,
                    help="random draws a defense-adaptive attack averages over per step (EOT; default 4)")
    group.addoption("--nicrobust-no-transfer", action="store_true",
                    help="do not generate transfer tests (or deselect them with -m 'not transfer')")
    group.addoption("--nicrobust-cache", metavar="DIR", default=None,
                    help="adversarial-image cache (default: nicrobust/ in the pytest cache directory)")
    group.addoption("--nicrobust-timeout", type=float, default=1800.0, metavar="SECONDS",
                    help="time limit per robustness test (default 1800; 0: none)")
    group.addoption("--nicrobust-shard", metavar="K/N", default=None,
                    help="run the K-th of N deterministic parts of the suites (whole models per part); "
                         "python -m pytest_nicrobust merge joins their JSON")
    group.addoption("--nicrobust-compare", metavar="BASELINE.json", default=None,
                    help="compare with a previous run's --nicrobust-json (tests matched by parameters)")
    group.addoption("--nicrobust-compare-fail", metavar="LIMITS", default=None,
                    help="fail a test that got worse than allowed, e.g. delta_psnr:0.3,bitrate_increase:10%% "
                         "(also [regression] in thresholds.toml)")
    group.addoption("--nicrobust-compare-map", metavar="OLD=NEW,...", default=None,
                    help="baseline codec labels to compare with this run's, e.g. ourcodec-v1=ourcodec-v2")


# -- configuration: everything a user can get wrong is checked once, here -----------

def _settings(config) -> dict:
    """Thresholds, metrics and baseline, checked before collection; a mistake is one clear error, no traceback."""
    from .baseline import load_baseline, parse_cli, parse_mapping
    from .metric_names import parse_metrics
    from .thresholds import DEFAULT_PATH, load_thresholds

    try:
        compare = config.getoption("nicrobust_compare")
        compare_fail = parse_cli(config.getoption("nicrobust_compare_fail"))
        baseline = load_baseline(compare, parse_mapping(config.getoption("nicrobust_compare_map"))) if compare else None
        if compare_fail and not baseline:
            raise ValueError("--nicrobust-compare-fail needs --nicrobust-compare BASELINE.json")
        metrics = parse_metrics(config.getoption("nicrobust_metrics"))
        path = config.getoption("nicrobust_thresholds")
        rootdir_file = os.path.join(str(config.rootpath), "thresholds.toml")
        if path is None and not os.path.exists(rootdir_file):
            thresholds = load_thresholds(DEFAULT_PATH, is_default=True)
        else:
            thresholds = load_thresholds(path or rootdir_file)
        thresholds.check_computed(metrics)
    except (NicrobustError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    json_path = config.getoption("nicrobust_json")
    if json_path and not hasattr(config, "workerinput"):
        folder = os.path.dirname(os.path.abspath(json_path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise pytest.UsageError(f"--nicrobust-json {json_path}: folder {folder} does not exist or is not writable")
    from .devices import check_device
    from .shards import parse_shard

    try:
        check_device(config.getoption("nicrobust_device"))
        if config.getoption("nicrobust_shard"):
            parse_shard(config.getoption("nicrobust_shard"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    for option in ("nicrobust_batch_size", "nicrobust_eot_samples", "nicrobust_threads"):
        value = config.getoption(option)
        if value is not None and value < 1:
            raise pytest.UsageError(f"--{option.replace('_', '-')}: must be at least 1, got {value}")
    return {"metrics": metrics, "thresholds": thresholds, "baseline": baseline, "compare_fail": compare_fail}


def pytest_configure(config):
    config.addinivalue_line("markers", "nicrobust: a robustness case generated from a suite file")
    config.addinivalue_line("markers", "heavy: long case (full data set or many steps); needs --nicrobust-heavy")
    config.addinivalue_line("markers", "transfer: x' made for one codec, measured on another (pytest-nicrobust)")
    config.addinivalue_line("markers", "worst_case: the per-image worst over a suite's attacks (pytest-nicrobust)")
    config.stash[_SETTINGS] = _settings(config)
    _pin_device(config)
    config.pluginmanager.register(ResultCollector(config), "nicrobust-results")


def _visible_gpus(config) -> list[str]:
    """The CUDA devices this run may use; asks torch only when a GPU could be used."""
    from .devices import visible_gpus

    if config.getoption("nicrobust_device") == "cpu":
        return []
    import torch

    return visible_gpus(dict(os.environ), torch.cuda.device_count())


def _pin_device(config) -> None:
    """On an xdist worker: narrow CUDA_VISIBLE_DEVICES to this worker's GPU before CUDA starts."""
    from .devices import worker_gpu

    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or "nicrobust_gpus" not in workerinput:
        return
    try:
        gpu = worker_gpu(workerinput["workerid"], workerinput["nicrobust_gpus"], config.getoption("nicrobust_device"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        config.stash[_PINNED] = gpu


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per visible GPU (None: xdist's default, one per CPU core)."""
    return len(_visible_gpus(config)) or None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tell each xdist worker which GPUs exist, so it can pin itself before importing CUDA."""
    node.workerinput["nicrobust_gpus"] = _visible_gpus(node.config)


def pytest_report_header(config):
    thresholds = config.stash[_SETTINGS]["thresholds"]
    note = "  (no thresholds.toml in the rootdir: the plugin's default limits)" if thresholds.is_default else ""
    return [f"nicrobust: thresholds {thresholds.path}{note}; seed {config.getoption('nicrobust_seed')}"]


# -- collection ----------------------------------------------------------------

def _is_suite(file_path, parent) -> bool:
    if file_path.suffix != ".toml" or file_path.name in ("pyproject.toml", "thresholds.toml"):
        return False
    return file_path.parent.name == "suites" or file_path.name.endswith(".suite.toml") or parent.session.isinitpath(file_path)


def pytest_collect_file(file_path, parent):
    if _is_suite(file_path, parent):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class SuiteFile(pytest.File):
    def collect(self):
        settings = self.config.stash[_SETTINGS]
        suite = parse_suite(str(self.path), display=_display_path(self), thresholds=settings["thresholds"],
                            metrics=settings["metrics"])
        for case in suite.cases:
            yield RobustnessItem.from_parent(self, name=case.name, callobj=_robustness_test, case=case)
        for wc in suite.worst_cases:
            yield RobustnessItem.from_parent(self, name=wc.name, callobj=_worst_case_test, case=wc)
        if suite.transfer and not self.config.getoption("nicrobust_no_transfer"):
            for tcase in transfer_cases(suite.cases):
                yield RobustnessItem.from_parent(self, name=tcase.name, callobj=_transfer_test, case=tcase)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, NicrobustError):
            return str(excinfo.value)
        return super().repr_failure(excinfo) if style is None else super().repr_failure(excinfo, style)


def _display_path(node) -> str:
    try:
        return str(node.path.relative_to(node.config.invocation_params.dir))
    except ValueError:
        return str(node.path)


def _marker_names(case) -> list[str]:
    if isinstance(case, TransferCase):
        target = case.target if isinstance(case.target, str) else case.target.label
        return ["transfer", f"target_{target}"] + _marker_names(case.source)[:3]
    if isinstance(case, WorstCase):
        return ["worst_case", f"codec_{case.codec.label}", f"dataset_{case.dataset.name}", f"defense_{case.defense}"]
    return [f"codec_{case.codec.label}", f"attack_{case.attack.name}", f"dataset_{case.dataset.name}",
            f"defense_{case.defense}", f"objective_{case.attack.objective.replace(':', '_')}"]


class RobustnessItem(pytest.Function):
    """One (codec, bitrate, attack, dataset, defense) combination, a worst case, or a transfer cell."""

    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.nicrobust_case = case

    def repr_failure(self, excinfo, style=None):
        from .gates import GateFailure

        if isinstance(excinfo.value, GateFailure):
            return excinfo.value.details
        if isinstance(excinfo.value, NicrobustError):
            return f"{excinfo.value.category}: {excinfo.value}"
        return super().repr_failure(excinfo) if style is None else super().repr_failure(excinfo, style)

    def reportinfo(self):
        # no domain: pytest's -v line would otherwise turn dots of a label into "::" (ourcodec.v2)
        return self.path, None, ""


def _kind_order(item) -> int:
    """Cases first, then worst cases (they reuse the cases' rows), then transfer (it reuses their x')."""
    case = getattr(item, "nicrobust_case", None)
    return 2 if isinstance(case, TransferCase) else 1 if isinstance(case, WorstCase) else 0


def pytest_itemcollected(item):
    if isinstance(item, RobustnessItem):
        case = item.nicrobust_case
        item.add_marker("nicrobust")
        item.add_marker(pytest.mark.xdist_group(case.model_key))
        for name in _marker_names(case):
            item.config.addinivalue_line("markers", f"{name}: generated by pytest-nicrobust")
            item.add_marker(name)
        dataset = case.source.dataset if isinstance(case, TransferCase) else case.dataset
        if dataset.heavy:
            item.add_marker("heavy")


def pytest_collection_modifyitems(config, items):
    items.sort(key=_kind_order)
    if not config.getoption("nicrobust_heavy"):
        _deselect(config, items, lambda item: item.get_closest_marker("heavy"))
    if config.getoption("nicrobust_shard"):
        from .shards import assign, case_cost, parse_shard

        k, n = parse_shard(config.getoption("nicrobust_shard"))
        costs: dict = {}
        for item in items:
            if isinstance(item, RobustnessItem):
                key = item.nicrobust_case.model_key
                costs[key] = costs.get(key, 0.0) + case_cost(item.nicrobust_case)
        shard_of = assign(costs, n)
        _deselect(config, items, lambda item: shard_of[item.nicrobust_case.model_key] != k)


def _deselect(config, items, drop) -> None:
    """Deselect the robustness items for which ``drop(item)`` is true."""
    keep, gone = [], []
    for item in items:
        (gone if isinstance(item, RobustnessItem) and drop(item) else keep).append(item)
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = keep


# -- fixtures --------------------------------------------------------------------

@pytest.fixture(scope="session")
def nicrobust_context(request):
    """Per-worker settings and caches (device, batch size, thresholds, loaded models)."""
    import torch

    from .advcache import AdvCache
    from .devices import cpu_count, image_workers, threads_per_process
    from .runner import RunContext, default_batch_size, default_device

    config = request.config
    settings = config.stash[_SETTINGS]
    device = config.getoption("nicrobust_device")
    if _PINNED in config.stash:
        device = "cuda"  # a pinned worker sees its one GPU as cuda:0
    elif device == "auto":
        device = default_device()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) if hasattr(config, "workerinput") else 1
    parallel = 1
    if device.startswith("cuda"):  # batches on the GPU; the CPU share for coding and metrics
        gpus = getattr(config, "workerinput", {}).get("nicrobust_gpus") or _visible_gpus(config)
        torch.set_num_threads(threads_per_process(gpus, cpu_count()))
    else:  # one torch thread per image, the same numbers whatever -n is; images in parallel
        torch.set_num_threads(1)
        parallel = config.getoption("nicrobust_threads") or image_workers(cpu_count(), workers)
    return RunContext(
        cache=AdvCache(_cache_dir(config)),
        device=device,
        batch_size=config.getoption("nicrobust_batch_size") or default_batch_size(device),
        metrics=settings["metrics"],
        data_root=config.getoption("nicrobust_data"),
        cityscapes_root=config.getoption("nicrobust_cityscapes"),
        thresholds=settings["thresholds"],
        run_seed=config.getoption("nicrobust_seed"),
        eot_samples=config.getoption("nicrobust_eot_samples"),
        search=(str(config.rootpath),),
        baseline=settings["baseline"],
        compare_fail=settings["compare_fail"],
        image_workers=parallel,
        pictures=bool(getattr(config.option, "allure_report_dir", None)),
    )


def _cache_dir(config) -> str | None:
    """Shared by xdist workers: the pytest cache directory, or a private per-user folder without one."""
    from .advcache import private_folder

    if config.getoption("nicrobust_cache"):
        return config.getoption("nicrobust_cache")
    if getattr(config, "cache", None) is not None:
        return str(config.cache.mkdir("nicrobust"))
    import hashlib

    tag = hashlib.sha256(str(config.rootpath).encode()).hexdigest()[:12]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return private_folder(os.path.join(base, "pytest-nicrobust", tag))


@pytest.fixture
def nicrobust_case(request):
    return request.node.nicrobust_case


@pytest.fixture
def nicrobust_defense(request, nicrobust_case):
    """The case's defense (a :class:`pytest_nicrobust.defenses.Defense`), or None for ``none``.

    Resolved through the fixture ``nicrobust_defense_<name>`` ("-" -> "_"), so a conftest can
    override a built-in one (e.g. another JPEG quality) or provide a registered custom one.
    """
    name = getattr(nicrobust_case, "defense", "none")
    if name == "none":
        return None
    try:
        return request.getfixturevalue(fixture_name(name))
    except pytest.FixtureLookupError:
        raise NicrobustError(f"defense {name!r} is registered but no fixture {fixture_name(name)!r} "
                             "provides it; define one in your conftest.py") from None


def _builtin_defense_fixture(name: str):
    @pytest.fixture(name=fixture_name(name))
    def defense():
        from .defenses import builtin_defense

        return builtin_defense(name)

    defense.__doc__ = f"The built-in {name!r} defense; override this fixture to change its settings."
    return defense


for _name in BUILTIN[1:]:  # nicrobust_defense_flip, nicrobust_defense_roll, ...
    globals()[fixture_name(_name)] = _builtin_defense_fixture(_name)


def _new_result(request, case, ctx) -> dict:
    result = {"id": request.node.nodeid, "name": case.name, "suite": os.path.abspath(case.suite), "device": ctx.device,
              "worker": getattr(request.config, "workerinput", {}).get("workerid")}
    if ctx.device.startswith("cuda"):
        import torch

        result["device_name"] = torch.cuda.get_device_name(torch.device(ctx.device))
        result["gpu"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    request.node.stash[_RESULT] = result
    return result


def _run_guarded(request, case, ctx, run, *extra):
    """``run(case, ctx, result, *extra)`` under --nicrobust-timeout; under xdist, never twice after it ended a worker."""
    import contextlib
    import tempfile

    from .timeguard import once_per_run, time_limit

    result = _new_result(request, case, ctx)
    seconds = request.config.getoption("nicrobust_timeout")
    workerinput = getattr(request.config, "workerinput", None)
    guard = contextlib.nullcontext()
    if seconds and workerinput:  # the markers sit beside the x' cache, shared by the workers
        folder = os.path.join(ctx.cache.root or tempfile.gettempdir(), "running")
        guard = once_per_run(folder, workerinput.get("testrunuid", ""), request.node.nodeid)
    with guard, time_limit(seconds, request.node.name):
        run(case, ctx, result, *extra)


def _robustness_test(request, nicrobust_case, nicrobust_context, nicrobust_defense):
    from .runner import run_case

    _run_guarded(request, nicrobust_case, nicrobust_context, run_case, nicrobust_defense)


def _worst_case_test(request, nicrobust_case, nicrobust_context, nicrobust_defense):
    from .worst_case import run_worst_case

    _run_guarded(request, nicrobust_case, nicrobust_context, run_worst_case, nicrobust_defense)


def _transfer_test(request, nicrobust_case, nicrobust_context):
    from .transfer import run_transfer

    _run_guarded(request, nicrobust_case, nicrobust_context, run_transfer)


# -- results: carried on reports so they survive xdist -----------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call" and _RESULT in item.stash:
        result = dict(item.stash[_RESULT], outcome=report.outcome)
        if call.excinfo is not None and not hasattr(call.excinfo.value, "__notes__"):
            result["error"] = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"[:2000]
        report.user_properties.append((RESULT_KEY, json.dumps(result, default=float)))
    return report


class ResultCollector:
    """Gathers every test's result on the controller (or the only process) and writes the run's files.

    The JSON is rewritten (atomically) as results arrive, so a run that is killed keeps what it
    measured; a robustness test that crashed or errored without a result is recorded too.
    """

    def __init__(self, config):
        self.config = config
        self.results: dict[str, dict] = {}
        self.writer = None

    def pytest_sessionstart(self, session):
        if not hasattr(self.config, "workerinput"):
            from .outputs import RunWriter

            self.writer = RunWriter(self.config, self.config.stash[_SETTINGS])

    def pytest_runtest_logreport(self, report):
        found = [json.loads(v) for k, v in report.user_properties if k == RESULT_KEY]
        for result in found:
            self.results[result["id"]] = result
        # a worker's crash report carries no keywords: a robustness test is one from a suite file
        ours = "nicrobust" in report.keywords or report.nodeid.split("::")[0].endswith(".toml")
        if not found and report.failed and ours and report.nodeid not in self.results:
            name = report.nodeid.rpartition("::")[2]
            self.results[report.nodeid] = {"id": report.nodeid, "name": name, "kind": "crashed",
                                           "outcome": "failed", "error": report.longreprtext[-2000:]}
        if self.writer and (found or report.failed):
            self.writer.progress(self.sorted())

    def sorted(self) -> list[dict]:
        return sorted(self.results.values(), key=lambda r: r["id"])

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        if self.writer:
            self.writer.finish(self.sorted())

    def pytest_terminal_summary(self, terminalreporter):
        if self.writer:
            self.writer.terminal_summary(terminalreporter, self.sorted())
