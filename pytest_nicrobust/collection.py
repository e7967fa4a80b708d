"""Collection: suite files become test items, with markers, a run order and a shard.

Torch-free. A suite file gives its cases, then its worst cases, then its transfer cells (see
:mod:`pytest_nicrobust.config.cases`); every item carries its case and calls one test function,
which runs the case on a worker (:mod:`pytest_nicrobust.run.dispatch`).
"""

from __future__ import annotations

import os

import pytest

from . import DataError, NicrobustError
from .config.cases import TEST_KINDS, transfer_cases
from .config.shards import assign
from .config.suite import parse_suite
from .session import SESSION

SUITE_SUFFIX = ".suite.toml"


def is_suite(file_path, parent) -> bool:
    """Suites are opt-in by name, so that other tools' TOML files never become tests: a ``*.suite.toml``,
    a file listed in the ``nicrobust_suites`` ini option, or a ``.toml`` named on the command line."""
    if file_path.suffix != ".toml" or file_path.name in ("pyproject.toml", "thresholds.toml"):
        return False
    return (
        file_path.name.endswith(SUITE_SUFFIX)
        or file_path in parent.config.getini("nicrobust_suites")
        or parent.session.isinitpath(file_path)
    )


def _display_path(node) -> str:
    try:
        return str(node.path.relative_to(node.config.invocation_params.dir))
    except ValueError:
        return str(node.path)


def suite_tests(config, path: str, display: str) -> list:
    """The tests a suite file makes (cases, curves, worst cases, transfer cells, bitstream tests), before
    ordering and selection."""
    session = config.stash[SESSION]
    suite = parse_suite(path, display=display, thresholds=session.thresholds, metrics=session.metrics)
    transfer = suite.transfer and not config.getoption("nicrobust_no_transfer")
    tests = suite.cases + suite.curves + suite.worst_cases(transfer)
    if transfer:
        tests += transfer_cases(suite.cases)
    return tests + suite.bitstreams


def check_data_root(config, tests, display: str) -> None:
    """A suite's data-root datasets (kodak, bsds, nips2017, ...: no ``path``, not bundled) need
    --nicrobust-data: one error at collection, not one failure per test. The dataset's own checks
    (training-only, image counts) stay with :func:`pytest_nicrobust.datasets.dataset_folder`."""
    root = config.getoption("nicrobust_data")
    for entry in dict.fromkeys(case.dataset for case in tests):
        if entry.path or entry.name in ("skimage-photos", "cityscapes"):
            continue
        if not root:
            raise DataError(
                f"{display}: dataset {entry.name!r} needs the data root: pass --nicrobust-data DIR or set "
                f"NICROBUST_DATA to a folder holding {entry.name}/ (in this repository: ../shared/data)"
            )
        if not os.path.isdir(os.path.join(root, entry.name)):
            raise DataError(
                f"{display}: dataset {entry.name!r}: folder {os.path.join(root, entry.name)} does not exist "
                f"(data root {root})"
            )


class SuiteFile(pytest.File):
    def collect(self):
        tests = suite_tests(self.config, str(self.path), _display_path(self))
        check_data_root(self.config, tests, _display_path(self))
        for case in tests:
            yield RobustnessItem.from_parent(self, name=case.name, callobj=_nicrobust_test, case=case)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, NicrobustError):
            return str(excinfo.value)
        return super().repr_failure(excinfo) if style is None else super().repr_failure(excinfo, style)


class RobustnessItem(pytest.Function):
    """One (codec, bitrate, attack, dataset, defense) combination, a worst case, or a transfer cell."""

    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.nicrobust_case = case
        _params_as_pytest_reads_them(self)

    def repr_failure(self, excinfo, style=None):
        from .verdict.gates import GateFailure

        if isinstance(excinfo.value, GateFailure):
            return excinfo.value.details
        if isinstance(excinfo.value, NicrobustError):
            return f"{excinfo.value.category}: {excinfo.value}"
        return super().repr_failure(excinfo) if style is None else super().repr_failure(excinfo, style)

    def reportinfo(self):
        # The domain is the failure section's header (``___ name ___``). pytest's -v line turns dots
        # before "[" of a domain that ends the node id into "::" (ourcodec.v2 -> ourcodec::v2): for such
        # a name, a trailing space keeps the header and leaves the -v line as the node id.
        head = self.name.split("[", 1)[0]
        return self.path, None, self.name + " " if "." in head else self.name


def _params_as_pytest_reads_them(item) -> None:
    """The item's structured id with the name's ``[...]`` as its parameters, as a parametrised test's.

    pytest >= 9.2 keeps a structured id beside the string node id, and reads the ids it stored (the
    last-failed cache of ``--lf``/``--ff``, ``--sw``'s last failure) back by splitting ``name[params]``.
    An item built with the bracket inside its name compared unequal to its own stored id, so ``--lf``
    reran everything ("N known failures not in selected tests"). The string node id is unchanged; on
    pytest 8 (string ids only) there is nothing to do.
    """
    node_id = getattr(item, "_id", None)
    parse = getattr(type(node_id), "parse", None)
    if parse is not None:
        item._id = parse(str(node_id))


def _nicrobust_test(request, nicrobust_case, nicrobust_context, nicrobust_defense):
    """The body of every robustness item: run its case on this worker (under the time guard)."""
    request.config.stash[SESSION].run_test(request, nicrobust_case, nicrobust_context, nicrobust_defense)


def mark(item) -> None:
    """Markers of a robustness item: nicrobust, its xdist group, its labels, heavy."""
    case = item.nicrobust_case
    item.add_marker("nicrobust")
    item.add_marker(pytest.mark.xdist_group(case.model_key))
    for name in case.markers:
        item.config.addinivalue_line("markers", f"{name}: generated by pytest-nicrobust")
        item.add_marker(name)
    if case.dataset.heavy:
        item.add_marker("heavy")


def run_order(item) -> tuple:
    """Cases and curves (the costliest first), then worst cases, then transfer cells (both reuse the cases' x').

    Costly first, so the run's last minutes are cheap tests the workers share out, and the x'
    that worst cases and transfer cells read are made early (:mod:`.scheduling` hands a test out
    only once no other worker is still making an x' it needs).
    """
    if not isinstance(item, RobustnessItem):
        return (0, 0.0)
    case = item.nicrobust_case
    attacks = case.kind in ("case", "curve")
    return (0 if attacks else TEST_KINDS.index(case.kind), -case.cost if attacks else 0.0)


def order_and_select(config, items) -> None:
    """Items in :func:`run_order` (stable); heavy items and other shards deselected."""
    items.sort(key=run_order)
    if not config.getoption("nicrobust_heavy"):
        _deselect(config, items, lambda item: item.get_closest_marker("heavy"))
    shard = config.getoption("nicrobust_shard")
    if shard:
        k, n = shard
        costs: dict = {}
        for item in items:
            if isinstance(item, RobustnessItem):
                key = item.nicrobust_case.model_key
                costs[key] = costs.get(key, 0.0) + item.nicrobust_case.cost
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
