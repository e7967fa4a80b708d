"""pytest entry point: options, markers, hooks and fixtures, each a few lines into the session.

No torch import at module import: ``pytest --help`` and unrelated test runs stay fast. Options
live in :mod:`.options`, the session (settings, devices, records, the run's files) in
:mod:`.session`, collection in :mod:`.collection`; a test's work in :mod:`.run`.
"""

from __future__ import annotations

import pytest

from . import NicrobustError
from .collection import RobustnessItem, SuiteFile, is_suite, mark, order_and_select
from .defenses.registry import BUILTIN_DEFENSE_NAMES, fixture_name
from .options import add_options
from .session import SESSION, NicrobustSession, visible_gpus

MARKERS = (
    "nicrobust: a robustness case generated from a suite file",
    "heavy: long case (full data set or many steps); needs --nicrobust-heavy",
    "transfer: x' made for one codec, measured on another (pytest-nicrobust)",
    "worst_case: the per-image worst over a suite's attacks (pytest-nicrobust)",
)


def pytest_addoption(parser):
    add_options(parser)


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    session = config.stash[SESSION] = NicrobustSession(config)
    session.pin_device()
    config.pluginmanager.register(_Hooks(session), "nicrobust-session")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per visible GPU (None: xdist's default, one per CPU core). xdist asks
    before pytest_configure, so before the session exists."""
    return len(visible_gpus(config)) or None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist load``: one test at a time, never one that would wait on another worker's x' (:mod:`.scheduling`)."""
    from .scheduling import make_scheduler

    return make_scheduler(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tell each xdist worker which GPUs exist, so it can pin itself before importing CUDA."""
    node.workerinput["nicrobust_gpus"] = node.config.stash[SESSION].visible_gpus()


def pytest_collect_file(file_path, parent):
    return SuiteFile.from_parent(parent, path=file_path) if is_suite(file_path, parent) else None


def pytest_itemcollected(item):
    if isinstance(item, RobustnessItem):
        mark(item)


def pytest_collection_modifyitems(config, items):
    order_and_select(config, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    item.config.stash[SESSION].attach_record(item, call, report)
    return report


class _Hooks:
    """The session's controller-side hooks (registered once the session exists)."""

    def __init__(self, session: NicrobustSession):
        self.session = session

    def pytest_sessionstart(self, session):
        self.session.start()

    def pytest_collection_finish(self, session):
        self.session.collected([item.nodeid for item in session.items if isinstance(item, RobustnessItem)])

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        """Under xdist the controller collects nothing: a worker's collection says what was selected."""
        self.session.collected(ids)

    def pytest_runtest_logreport(self, report):
        self.session.collect_report(report)

    def pytest_keyboard_interrupt(self, excinfo):
        """Ctrl-C, or xdist stopping the run (``-x``, ``--maxfail``): its message says why."""
        self.session.stop_reason = str(excinfo.value) or excinfo.typename

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        self.session.finish(session.shouldfail or session.shouldstop or None)
        if self.session.late_errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a passing test the records show failed

    def pytest_terminal_summary(self, terminalreporter):
        self.session.terminal_summary(terminalreporter)


# -- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="session")
def nicrobust_context(request):
    """Per-worker settings and caches (device, batch size, thresholds, loaded models)."""
    return request.config.stash[SESSION].context()


@pytest.fixture
def nicrobust_case(request):
    return request.node.nicrobust_case


@pytest.fixture
def nicrobust_defense(request, nicrobust_case):
    """The case's defense (a :class:`pytest_nicrobust.defenses.Defense`), or None for ``none``.

    Resolved through the fixture ``nicrobust_defense_<name>`` ("-" -> "_"), so a conftest can
    override a built-in one (e.g. another JPEG quality) or provide a registered custom one.
    """
    name = nicrobust_case.defense
    if name == "none":
        return None
    try:
        return request.getfixturevalue(fixture_name(name))
    except pytest.FixtureLookupError:
        raise NicrobustError(
            f"defense {name!r} is registered but no fixture {fixture_name(name)!r} "
            "provides it; define one in your conftest.py"
        ) from None


def _builtin_defense_fixture(name: str):
    @pytest.fixture(name=fixture_name(name))
    def defense():
        from .defenses.transforms import builtin_defense

        return builtin_defense(name)

    defense.__doc__ = f"The built-in {name!r} defense; override this fixture to change its settings."
    return defense


for _name in BUILTIN_DEFENSE_NAMES[1:]:  # nicrobust_defense_flip, nicrobust_defense_roll, ...
    globals()[fixture_name(_name)] = _builtin_defense_fixture(_name)
