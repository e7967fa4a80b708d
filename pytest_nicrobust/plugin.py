"""pytest entry point: options, collection of suite files, fixtures, result gathering.

No torch import here: ``pytest --help`` and unrelated test runs stay fast. The work of a
test happens in :mod:`pytest_nicrobust.runner`, imported when the first case runs.
"""

from __future__ import annotations

import json
import os

import pytest

from . import NicrobustError
from .suite import Case, parse_suite

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


def pytest_configure(config):
    config.addinivalue_line("markers", "nicrobust: a robustness case generated from a suite file")
    config.addinivalue_line("markers", "heavy: long case (full data set or many steps); needs --nicrobust-heavy")
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

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, NicrobustError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)


def _display_path(node) -> str:
    try:
        return str(node.path.relative_to(node.config.invocation_params.dir))
    except ValueError:
        return str(node.path)


def _marker_names(case: Case) -> list[str]:
    return [f"codec_{case.codec.label}", f"attack_{case.attack.name}", f"dataset_{case.dataset.name}",
            f"defense_{case.defense}", f"objective_{case.attack.objective.replace(':', '_')}"]


class RobustnessItem(pytest.Function):
    """One (codec, bitrate, attack, dataset, defense) combination."""

    nicrobust_case: Case

    def repr_failure(self, excinfo, style=None):
        from .gates import GateFailure

        if isinstance(excinfo.value, (GateFailure, NicrobustError)):
            prefix = "" if isinstance(excinfo.value, GateFailure) else f"{excinfo.value.category}: "
            return prefix + str(excinfo.value)
        return super().repr_failure(excinfo, style)

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
        if case.dataset.heavy:
            item.add_marker("heavy")


def pytest_collection_modifyitems(config, items):
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
    return RunContext(
        device=device,
        batch_size=config.getoption("nicrobust_batch_size") or default_batch_size(device),
        metrics=tuple(m.strip() for m in config.getoption("nicrobust_metrics").split(",") if m.strip()),
        data_root=config.getoption("nicrobust_data"),
        cityscapes_root=config.getoption("nicrobust_cityscapes"),
        thresholds=load_thresholds(path),
    )


@pytest.fixture
def nicrobust_case(request) -> Case:
    return request.node.nicrobust_case


@pytest.fixture
def nicrobust_seed(request, nicrobust_case) -> int:
    from .seeding import derive_seed

    return derive_seed(request.config.getoption("nicrobust_seed"),
                       f"{os.path.basename(nicrobust_case.suite)}::{nicrobust_case.name}")


def _robustness_test(request, nicrobust_case, nicrobust_context, nicrobust_seed):
    from .runner import run_case

    result = {"id": request.node.nodeid, "name": nicrobust_case.name}
    request.node.stash[_RESULT] = result
    run_case(nicrobust_case, nicrobust_context, nicrobust_seed, result)


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
        path = self.config.getoption("nicrobust_json")
        if path:
            tests = sorted(self.results, key=lambda r: r["id"])
            with open(path, "w") as f:
                json.dump({"seed": self.config.getoption("nicrobust_seed"), "tests": tests}, f, indent=1)
