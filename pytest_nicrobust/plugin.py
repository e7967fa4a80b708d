"""pytest entry point: options, collection of suite files, fixtures, result gathering.

No torch import here: ``pytest --help`` and unrelated test runs stay fast. The work of a
test happens in :mod:`pytest_nicrobust.runner`, imported when the first case runs.
"""

from __future__ import annotations

import json
import os

import pytest

from . import NicrobustError
from .defenses_registry import BUILTIN, fixture_name
from .suite import Case, parse_suite
from .transfer import TransferCase, attack_id, transfer_cases

RESULT_KEY = "nicrobust_result"


# -- options -----------------------------------------------------------------

def pytest_addoption(parser):
    group = parser.getgroup("nicrobust", "neural image codec robustness (pytest-nicrobust)")
    group.addoption("--nicrobust-data", metavar="DIR", default=os.environ.get("NICROBUST_DATA"),
                    help="folder holding kodak/, bsds/, nips2017/ (env NICROBUST_DATA)")
    group.addoption("--nicrobust-cityscapes", metavar="DIR", default=os.environ.get("NICROBUST_CITYSCAPES"),
                    help="your Cityscapes images, e.g. leftImg8bit/val (env NICROBUST_CITYSCAPES)")
    group.addoption("--nicrobust-thresholds", metavar="PATH", default=None,
                    help="limits file (default: thresholds.toml in the rootdir)")
    group.addoption("--nicrobust-json", metavar="PATH", default=None,
                    help="write every test's per-image and mean values to this JSON file")
    group.addoption("--nicrobust-seed", type=int, default=0,
                    help="run seed; each test derives its own seed from it and its id (default 0)")
    group.addoption("--nicrobust-device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
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


def pytest_configure(config):
    config.addinivalue_line("markers", "nicrobust: a robustness case generated from a suite file")
    config.addinivalue_line("markers", "heavy: long case (full data set or many steps); needs --nicrobust-heavy")
    config.addinivalue_line("markers", "transfer: x' made for one codec, measured on another (pytest-nicrobust)")
    config.pluginmanager.register(ResultCollector(config), "nicrobust-results")
    # Under xdist, keep the items of one model on one worker so it loads the model once.
    if getattr(config.option, "dist", None) == "load":
        config.option.dist = "loadgroup"


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
        suite = parse_suite(str(self.path), display=_display_path(self))
        for case in suite.cases:
            item = RobustnessItem.from_parent(self, name=case.name, callobj=_robustness_test)
            item.nicrobust_case = case
            yield item
        if suite.transfer and not self.config.getoption("nicrobust_no_transfer"):
            for tcase in transfer_cases(suite.cases):
                item = RobustnessItem.from_parent(self, name=tcase.name, callobj=_transfer_test)
                item.nicrobust_case = tcase
                yield item

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, NicrobustError):
            return str(excinfo.value)
        return super().repr_failure(excinfo) if style is None else super().repr_failure(excinfo, style)


def _display_path(node) -> str:
    try:
        return str(node.path.relative_to(node.config.invocation_params.dir))
    except ValueError:
        return str(node.path)


def _marker_names(case: Case | TransferCase) -> list[str]:
    if isinstance(case, TransferCase):
        target = case.target if isinstance(case.target, str) else case.target.label
        return ["transfer", f"target_{target}"] + _marker_names(case.source)[:3]
    return [f"codec_{case.codec.label}", f"attack_{case.attack.name}", f"dataset_{case.dataset.name}",
            f"defense_{case.defense}", f"objective_{case.attack.objective.replace(':', '_')}"]


class RobustnessItem(pytest.Function):
    """One (codec, bitrate, attack, dataset, defense) combination, or one transfer cell."""

    nicrobust_case: Case | TransferCase

    def repr_failure(self, excinfo, style=None):
        from .gates import GateFailure

        if isinstance(excinfo.value, (GateFailure, NicrobustError)):
            prefix = "" if isinstance(excinfo.value, GateFailure) else f"{excinfo.value.category}: "
            return prefix + str(excinfo.value)
        return super().repr_failure(excinfo) if style is None else super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name}"


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


def _is_transfer(item) -> bool:
    return isinstance(item, RobustnessItem) and isinstance(item.nicrobust_case, TransferCase)


def pytest_collection_modifyitems(config, items):
    # transfer tests last: by then the tests of their source codec have cached its x'
    items.sort(key=_is_transfer)
    if config.getoption("nicrobust_heavy"):
        return
    keep, heavy = [], []
    for item in items:
        (heavy if isinstance(item, RobustnessItem) and item.get_closest_marker("heavy") else keep).append(item)
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = keep


# -- fixtures --------------------------------------------------------------------

@pytest.fixture(scope="session")
def nicrobust_context(request):
    """Per-worker settings and caches (device, batch size, thresholds, loaded models)."""
    from .runner import RunContext, default_batch_size, default_device
    from .thresholds import load_thresholds

    config = request.config
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    device = config.getoption("nicrobust_device")
    device = default_device() if device == "auto" else device
    path = config.getoption("nicrobust_thresholds") or os.path.join(str(config.rootpath), "thresholds.toml")
    from .advcache import AdvCache

    return RunContext(
        cache=AdvCache(_cache_dir(config)),
        device=device,
        batch_size=config.getoption("nicrobust_batch_size") or default_batch_size(device),
        metrics=tuple(m.strip() for m in config.getoption("nicrobust_metrics").split(",") if m.strip()),
        data_root=config.getoption("nicrobust_data"),
        cityscapes_root=config.getoption("nicrobust_cityscapes"),
        thresholds=load_thresholds(path),
        eot_samples=config.getoption("nicrobust_eot_samples"),
    )


def _cache_dir(config) -> str:
    """Shared by xdist workers: the pytest cache directory, or a per-rootdir temp folder without one."""
    if config.getoption("nicrobust_cache"):
        return config.getoption("nicrobust_cache")
    if getattr(config, "cache", None) is not None:
        return str(config.cache.mkdir("nicrobust"))
    import hashlib
    import tempfile

    tag = hashlib.sha256(str(config.rootpath).encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"nicrobust-cache-{os.getuid()}-{tag}")


@pytest.fixture
def nicrobust_case(request) -> Case | TransferCase:
    return request.node.nicrobust_case


def _suite_id(case, name: str) -> str:
    return f"{os.path.basename(case.suite)}::{name}"


@pytest.fixture
def nicrobust_seed(request, nicrobust_case) -> int:
    """The attack's seed. Shared by the defenses of one (codec, attack, dataset) and its transfer
    tests, so their x' against the bare codec is the same image (made once, then cached)."""
    from .seeding import derive_seed

    source = nicrobust_case.source if isinstance(nicrobust_case, TransferCase) else nicrobust_case
    return derive_seed(request.config.getoption("nicrobust_seed"), _suite_id(source, attack_id(source)))


@pytest.fixture
def nicrobust_defense_seed(request, nicrobust_case) -> int:
    """Seed of the defense's random draw; the same draw serves x and x' (common random numbers)."""
    from .seeding import derive_seed

    return derive_seed(request.config.getoption("nicrobust_seed"), _suite_id(nicrobust_case, nicrobust_case.name), "defense")


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
    result = {"id": request.node.nodeid, "name": case.name, "device": ctx.device}
    request.node.stash[_RESULT] = result
    return result


def _robustness_test(request, nicrobust_case, nicrobust_context, nicrobust_seed, nicrobust_defense,
                     nicrobust_defense_seed):
    from .runner import run_case

    result = _new_result(request, nicrobust_case, nicrobust_context)
    run_case(nicrobust_case, nicrobust_context, nicrobust_seed, result, nicrobust_defense, nicrobust_defense_seed)


def _transfer_test(request, nicrobust_case, nicrobust_context, nicrobust_seed):
    from .transfer import run_transfer

    run_transfer(nicrobust_case, nicrobust_context, nicrobust_seed, _new_result(request, nicrobust_case, nicrobust_context))


_RESULT = pytest.StashKey[dict]()


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
    """Gathers every test's result on the controller (or the only process) and writes the JSON."""

    def __init__(self, config):
        self.config = config
        self.results: list[dict] = []

    def pytest_runtest_logreport(self, report):
        for key, value in report.user_properties:
            if key == RESULT_KEY:
                self.results.append(json.loads(value))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        if hasattr(self.config, "workerinput"):
            return  # only the controller writes run-level files
        from .run_outputs import write_run_outputs

        write_run_outputs(self.config, sorted(self.results, key=lambda r: r["id"]))
