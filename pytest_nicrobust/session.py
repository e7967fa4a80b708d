"""The run's session object: settings checked once, devices, the tests' records, the run's files.

One :class:`NicrobustSession` per pytest process (controller and each xdist worker), kept in
``config.stash[SESSION]``; the plugin's hooks are a few lines each that call into it (the
pattern of pytest-benchmark's ``BenchmarkSession`` and syrupy's ``SnapshotSession``). Torch is
imported only when a test runs or a GPU could be used.
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from . import NicrobustError
from .config.thresholds import DEFAULT_PATH, load_thresholds
from .names import mode_suffix

# The record travels to the controller as this attribute of the test's report, a JSON string: xdist
# sends a report's attributes across, and user_properties (what --junitxml writes) stay for the means.
RECORD_ATTRIBUTE = "nicrobust_record"
RECORD = pytest.StashKey[dict]()


class NicrobustSession:
    """Settings of the run, checked before collection; a mistake is one clear error, no traceback."""

    def __init__(self, config):
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.metrics = config.getoption("nicrobust_metrics")
        self.compare_fail = config.getoption("nicrobust_compare_fail")
        self.pinned_gpu: str | None = None
        self.results: dict[str, dict] = {}
        self.selected: set[str] | None = None  # the robustness tests selected, once collected (controller)
        self.stop_reason: str | None = None
        self.late_errors: list[str] = []  # found once every record is in (a worst case below a member)
        self.writer = None
        self.stderr_fd = _terminal_stderr()
        self._marker_folder: str | None = None
        from .verdict.baseline import load_baseline

        try:
            compare = config.getoption("nicrobust_compare")
            self.baseline = load_baseline(compare, config.getoption("nicrobust_compare_map")) if compare else None
            if self.compare_fail and not self.baseline:
                raise ValueError("--nicrobust-compare-fail needs --nicrobust-compare BASELINE.json")
            path = config.getoption("nicrobust_thresholds")
            rootdir_file = os.path.join(str(config.rootpath), "thresholds.toml")
            if path is None and not os.path.exists(rootdir_file):
                self.thresholds = load_thresholds(DEFAULT_PATH, is_default=True)
            else:
                self.thresholds = load_thresholds(path or rootdir_file)
            self.thresholds.check_computed(self.metrics)
        except (NicrobustError, ValueError) as exc:
            raise pytest.UsageError(str(exc)) from None
        if not self.is_worker:
            self.check_outputs()

    def check_outputs(self) -> None:
        """Before anything is written: the results JSON, its transfer folder and the Allure folder
        replace nothing they must not (:func:`pytest_nicrobust.files.check_output`)."""
        from .files import OutputPathError, check_output, check_output_folder

        config = self.config
        json_path = config.getoption("nicrobust_json")
        inputs = {
            "the baseline (--nicrobust-compare)": config.getoption("nicrobust_compare"),
            "the thresholds file": self.thresholds.path,
        }
        inputs.update({f"an input ({arg})": arg.split("::")[0] for arg in config.args})
        try:
            if json_path:
                check_output(json_path, "--nicrobust-json", inputs)
                check_output_folder(os.path.splitext(json_path)[0] + "-transfer", "--nicrobust-json's transfer folder")
            alluredir = getattr(config.option, "allure_report_dir", None)
            if alluredir:
                check_output_folder(alluredir, "--alluredir")
        except OutputPathError as exc:
            raise pytest.UsageError(str(exc)) from None

    # -- devices ---------------------------------------------------------------

    def visible_gpus(self) -> list[str]:
        return visible_gpus(self.config)

    def pin_device(self) -> None:
        """On an xdist worker: narrow CUDA_VISIBLE_DEVICES to this worker's GPU before CUDA starts."""
        from .run.devices import worker_gpu

        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is None or "nicrobust_gpus" not in workerinput:
            return
        try:
            gpu = worker_gpu(
                workerinput["workerid"], workerinput["nicrobust_gpus"], self.config.getoption("nicrobust_device")
            )
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            self.pinned_gpu = gpu

    # -- on a worker: one test ---------------------------------------------------

    def context(self):
        """The per-worker :class:`~pytest_nicrobust.run.context.RunContext` (the session fixture)."""
        from .run.context import build_context

        return build_context(self)

    def new_record(self, request, case, ctx) -> dict:
        """The result record of a test (keys: :mod:`pytest_nicrobust.record`), carried on its report."""
        result = {
            "id": request.node.nodeid,
            "name": case.name,
            "suite": os.path.abspath(case.suite),
            "device": ctx.device,
            "worker": getattr(self.config, "workerinput", {}).get("workerid"),
        }
        if ctx.device.startswith("cuda"):
            import torch

            result["device_name"] = torch.cuda.get_device_name(torch.device(ctx.device))
            result["gpu"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        request.node.stash[RECORD] = result
        return result

    def run_test(self, request, case, ctx, defense) -> None:
        """Run ``case`` under --nicrobust-timeout; under xdist, never twice after it ended a worker.

        Under xdist the marker names the test and its limit, for the controller to report a worker
        the watchdog ended (:meth:`collect_report`); without xdist the results JSON names the test
        running, and the watchdog's dump goes to the terminal's stderr.
        """
        import contextlib

        from .run.dispatch import run_test
        from .timeguard import once_per_run, time_limit

        result = self.new_record(request, case, ctx)
        result.update(kind=case.kind, params=case.parameters)  # a test that never ends still says what it is
        seconds = self.config.getoption("nicrobust_timeout")
        workerinput = getattr(self.config, "workerinput", None)
        guard = contextlib.nullcontext()
        if seconds and workerinput:  # the markers sit beside the x' cache, shared by the workers
            about = {k: result[k] for k in ("name", "suite", "kind", "params")}
            guard = once_per_run(
                self.marker_folder(), workerinput.get("testrunuid", ""), request.node.nodeid, seconds, about
            )
        if self.writer:
            self.writer.running(self.sorted(), request.node.nodeid, seconds)
        ctx.running = request.node.nodeid
        with (
            guard,
            self.exit_named(request.node.nodeid, result),
            time_limit(seconds, request.node.nodeid, stderr_fd=self.stderr_fd),
        ):
            run_test(case, ctx, result, defense)

    def exit_named(self, test_id: str, result: dict):
        """Without xdist, ``os._exit`` in a codec ends the whole run at once: while a test runs, it first
        says so on the terminal, records the test as crashed in the results JSON, and never ends the run
        with status 0. A process the codec forked exits as it asked. Under xdist the controller reports
        the worker that died."""
        import contextlib

        if self.is_worker:
            return contextlib.nullcontext()
        real, pid = os._exit, os.getpid()

        def named_exit(status: int) -> None:
            if os.getpid() == pid:
                code = status or 1
                line = (
                    f"nicrobust: {test_id} called os._exit({status}) (the codec's code): the run ends inside this "
                    f"test, exit status {code}"
                )
                self.results[test_id] = {
                    **{k: v for k, v in result.items() if k in ("id", "name", "suite", "params")},
                    "kind": "crashed",
                    "outcome": "failed",
                    "error": line.removeprefix("nicrobust: "),
                }
                with contextlib.suppress(Exception):
                    if self.writer:
                        self.writer.progress(self.sorted())
                with contextlib.suppress(OSError):
                    os.write(self.stderr_fd if self.stderr_fd is not None else 2, f"\n{line}\n".encode())
                status = code
            real(status)

        @contextlib.contextmanager
        def patched():
            os._exit = named_exit
            try:
                yield
            finally:
                os._exit = real

        return patched()

    def attach_record(self, item, call, report) -> None:
        """Put the test's record (with its outcome and error) on its report, so it reaches the controller."""
        if call.when == "call" and RECORD in item.stash:
            # started/stopped: Unix times of the test's call (a run's timeline: benchmarks/job_efficiency.py)
            result = dict(item.stash[RECORD], outcome=report.outcome, started=call.start, stopped=call.stop)
            if call.excinfo is not None and not hasattr(call.excinfo.value, "__notes__"):
                result["error"] = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}"[:2000]
            setattr(report, RECORD_ATTRIBUTE, json.dumps(result, default=float))
            properties = gate_properties(result.get("gates") or [])
            report.user_properties.extend(properties)
            item.user_properties.extend(properties)  # --junitxml reads the teardown report's, made from the item's

    # -- on the controller: the run's records and files ------------------------------

    def start(self) -> None:
        """On the controller: the writer, and the skeleton JSON (``"complete": false``, provenance)."""
        if not self.is_worker:
            from .outputs.writer import RunWriter

            self.writer = RunWriter(self.config, self)
            self.writer.skeleton()

    def collected(self, ids: list[str]) -> None:
        """On the controller, once: the ids of the robustness tests this run collected (after ``-k``,
        ``-m``, ``--lf``, heavy and ``--nicrobust-shard``): what it owes the JSON (a test never run makes
        it incomplete), recorded there so that a merge can name a lost one."""
        mine = [i for i in ids if i.split("::")[0].endswith(".toml")]
        if mine and not self.selected:
            self.selected = set(mine)
        if self.writer is None or self.writer.collected is not None:
            return
        files = {os.path.normpath(os.path.join(str(self.config.rootpath), i.split("::")[0])) for i in mine}
        self.writer.set_collected(mine, files)
        self.writer.progress(self.sorted())

    def collect_report(self, report) -> None:
        """Keep a test's record; a robustness test that crashed or errored without one is recorded too.

        The JSON is rewritten (atomically) as each record arrives, before the next report, so a run
        that is killed keeps every test that finished. A worker the time limit's watchdog ended
        (its marker names the test and the limit) is a "time limit" failure of that test, with one
        line on the terminal, not a bare crash.
        """
        carried = getattr(report, RECORD_ATTRIBUTE, None)
        found = [json.loads(carried)] if carried else []
        for result in found:
            self.results[result["id"]] = result
        # a worker's crash report carries no keywords: a robustness test is one from a suite file
        ours = "nicrobust" in report.keywords or report.nodeid.split("::")[0].endswith(".toml")
        if not found and report.failed and ours and report.nodeid not in self.results:
            name = report.nodeid.rpartition("::")[2]
            self.results[report.nodeid] = self._ended_by_limit(report) or {
                "id": report.nodeid,
                "name": name,
                "kind": "crashed",
                "outcome": "failed",
                "error": report.longreprtext[-2000:],
            }
        if self.writer and (found or report.failed):
            self.writer.progress(self.sorted())

    def marker_folder(self) -> str:
        """Where a running test's marker lies: beside the x' cache, shared by the workers and the controller."""
        if self._marker_folder is None:
            import tempfile

            from .run.context import cache_dir  # only under a time limit with xdist

            self._marker_folder = os.path.join(cache_dir(self.config) or tempfile.gettempdir(), "running")
        return self._marker_folder

    def _ended_by_limit(self, report) -> dict | None:
        """The record of a test whose worker died past its time limit (xdist), from its marker."""
        from .timeguard import native_message, read_marker

        node = getattr(report, "node", None)
        run_id = (getattr(node, "workerinput", None) or {}).get("testrunuid")
        if run_id is None or not self.config.getoption("nicrobust_timeout"):
            return None
        marker = read_marker(self.marker_folder(), run_id, report.nodeid)
        if not marker or time.time() - float(marker.get("started", 0)) < float(marker.get("limit_s", 0)):
            return None  # died before its limit: a crash
        seconds = float(marker["limit_s"])
        line = (
            f"TimeLimitExceeded: {native_message(report.nodeid, seconds)} (worker {getattr(node.gateway, 'id', '?')})"
        )
        report.longrepr = line  # the failure and the short summary read this line, not "worker crashed"
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"nicrobust: {line}", red=True)
        about = {k: v for k, v in (marker.get("record") or {}).items() if k in ("name", "suite", "kind", "params")}
        return {
            "id": report.nodeid,
            "name": report.nodeid.rpartition("::")[2],
            "kind": "crashed",
            **about,
            "outcome": "failed",
            "error": line,
        }  # Allure's "time limit" category matches the error

    def sorted(self) -> list[dict]:
        return sorted(self.results.values(), key=lambda r: r["id"])

    def stopped_early(self, reason: str | None) -> dict | None:
        """Why the run is not complete, or None: selected tests that never ran (-x, --maxfail, --sw,
        Ctrl-C, pytest.exit) and what stopped it."""
        reason = reason or self.stop_reason
        if self.selected is None:
            return {"reason": str(reason)} if reason else None
        not_run = sorted(self.selected - set(self.results))
        if not not_run:
            return None
        return {
            "reason": str(reason or "tests ended without a report"),
            "not_run": len(not_run),
            "tests_not_run": not_run,
        }

    def finish(self, reason: str | None = None) -> None:
        """The run's files; first, a worst case below one of its members becomes an error (:mod:`.verdict.members`)."""
        from .verdict.members import below_members

        if self.writer:
            self.late_errors = below_members(self.sorted())
            self.writer.finish(self.sorted(), self.stopped_early(reason))
        if self.stderr_fd is not None:
            os.close(self.stderr_fd)
            self.stderr_fd = None

    def terminal_summary(self, terminalreporter) -> None:
        for line in self.late_errors:
            terminalreporter.write_line(f"nicrobust: error: {line}", red=True)
        if self.writer:
            self.writer.terminal_summary(terminalreporter, self.sorted())


def visible_gpus(config) -> list[str]:
    """The CUDA devices this run may use; asks torch only when a GPU could be used. A function of
    the options alone: xdist asks for ``-n auto``'s worker count before pytest_configure."""
    from .run.devices import visible_gpus as visible

    if config.getoption("nicrobust_device") == "cpu":
        return []
    import torch

    return visible(dict(os.environ), torch.cuda.device_count())


def gate_properties(gates: list[dict]) -> list[tuple[str, str]]:
    """A test's gates as (name, value) properties, as --junitxml writes them for CI dashboards:
    ``nicrobust.delta_psnr`` = the mean and ``nicrobust.delta_psnr.limit``; a defended mode in brackets
    (``nicrobust.delta_psnr[adaptive]``); a regression gate's change and allowed change."""
    out = []
    for gate in gates:
        name = f"nicrobust.{gate['metric']}" + mode_suffix(gate.get("mode") or "").replace(" ", "")
        if gate.get("kind") == "regression":
            out += [(f"{name}.change", repr(gate["value"])), (f"{name}.allowed", repr(gate["limit"]))]
        else:
            out += [(name, repr(gate["value"])), (f"{name}.limit", repr(gate["limit"]))]
    return out


def _terminal_stderr() -> int | None:
    """A copy of the terminal's stderr, taken at configure time while pytest's capture is suspended:
    the time limit's watchdog prints there, not into captured output that dies with the process."""
    try:
        return os.dup(sys.__stderr__.fileno())
    except (AttributeError, OSError, ValueError):
        return None


SESSION = pytest.StashKey[NicrobustSession]()
