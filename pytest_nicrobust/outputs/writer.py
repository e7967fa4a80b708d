"""The run's writer, on the controller only: the results JSON first, then the summaries, the
transfer files, Allure's run files and the terminal summary (see the package's docstring).

:func:`write_outputs` serves both a run (:class:`RunWriter`) and ``python -m pytest_nicrobust merge``.
"""

from __future__ import annotations

import json
import os
import time
import traceback

from ..files import check_output_folder, sha256_or_none, write_file, write_json_atomic
from ..record import for_json
from ..verdict.baseline import run_comparison, setup_warnings
from . import allure_run, bitstream_files, curves, github, provenance, summary, terminal, transfer_matrix
from .schema import first_problem

FORMAT = 3  # of the JSON: docs/results-json.md (every key, its changelog), results.schema.json (the schema)


def run_document(
    prov: dict,
    results: list[dict],
    complete: bool,
    extras: dict | None = None,
    stopped: dict | None = None,
    collected: list[str] | None = None,
) -> dict:
    """The results JSON. ``complete`` is true only for a run that ran every selected test to its end;
    ``stopped`` says why one did not (``-x``, Ctrl-C: the reason and the tests never run);
    ``collected``: the ids of the robustness tests the run collected (a merge checks that every one
    has a record)."""
    return {
        "format": FORMAT,
        "complete": complete and stopped is None,
        **({"stopped": stopped} if stopped else {}),
        "provenance": prov,
        "tests": [for_json(r) for r in results],
        **({"collected": collected} if collected is not None else {}),
        **(extras or {}),
    }


class Outputs:
    """What was written and what went wrong on the way (an extra never costs the results)."""

    def __init__(self):
        self.written: list[str] = []
        self.problems: list[str] = []
        self.extras: dict = {}

    def attempt(self, what: str, fn):
        try:
            return fn()
        except Exception as exc:
            self.problems.append(f"{what} not written: {type(exc).__name__}: {exc}")
            if os.environ.get("NICROBUST_DEBUG"):
                traceback.print_exc()
            return None


def write_outputs(
    out: Outputs,
    prov: dict,
    results: list[dict],
    comparison: dict | None,
    json_path: str | None,
    alluredir: str | None,
    run_files: bool = True,
    stopped: dict | None = None,
    collected: list[str] | None = None,
) -> None:
    """The JSON first (measurements only), then the summaries in it, the transfer files, Allure's files.

    ``run_files``: write Allure's environment, executor and run summary (a shard leaves them to the merge).
    ``stopped``: why the run did not run every selected test (the JSON then says ``"complete": false``).
    ``collected``: the ids of the tests the run collected.
    """
    if json_path:  # 1. the measurements, before anything that could fail (a full disk: one warning)
        document = run_document(prov, results, True, stopped=stopped, collected=collected)
        if out.attempt("results JSON", lambda: write_json_atomic(json_path, document) or True) is None:
            json_path = None  # nothing more to add to a file that could not be written
        else:
            out.written.append(json_path)
    if json_path and any(r.get("failures") for r in results):  # bitstream findings as files beside the JSON
        out.written += out.attempt("bitstream findings", lambda: bitstream_files.save(results, json_path)) or []
    setup_warnings(comparison, prov)
    matrices = out.attempt("transfer matrices", lambda: transfer_matrix.assemble(results)) or {}
    out.extras = {
        "summary": out.attempt("summary", lambda: summary.build(results)) or {},
        "transfer": matrices,
        "comparison": comparison,
    }
    if json_path:  # 2. the same file with the summaries, checked against the schema the package ships
        doc = run_document(prov, results, True, out.extras, stopped, collected)
        problem = out.attempt("schema check", lambda: first_problem(json.loads(json.dumps(doc, default=float))))
        if problem:
            out.problems.append(f"{json_path} does not match results.schema.json: {problem} (please report it)")
        out.attempt("summaries in the JSON", lambda: write_json_atomic(json_path, doc))
    files = _transfer_files(out, matrices, json_path)
    if alluredir:
        out.attempt("Allure run files", lambda: _allure(out, alluredir, prov, results, files, run_files))


def _transfer_files(out: Outputs, matrices: dict, json_path: str | None) -> list:
    """CSV, JSON and heatmaps of the transfer matrices beside the JSON; nothing when no transfer cell ran."""
    if not matrices:
        return []
    files = out.attempt("transfer tables", lambda: transfer_matrix.tables(matrices)) or []
    files += out.attempt("transfer heatmaps", lambda: transfer_matrix.heatmaps(matrices)) or []
    if json_path and files:
        folder = os.path.splitext(json_path)[0] + "-transfer"

        def save():
            check_output_folder(folder, "the transfer folder")  # never through a link planted where the run writes
            os.makedirs(folder, exist_ok=True)
            for name, body in files:
                write_file(os.path.join(folder, name), body)
            out.written.append(folder + "/")

        out.attempt("transfer files", save)
    return files


def _allure(out: Outputs, alluredir: str, prov: dict, results: list[dict], files: list, run_files: bool) -> None:
    os.makedirs(alluredir, exist_ok=True)
    allure_run.write_json(alluredir, "categories.json", allure_run.categories())
    if run_files:
        allure_run.write_environment(alluredir, allure_run.environment(prov, results))
        status, message = summary.verdict(results)
        allure_run.write_json(
            alluredir, "executor.json", allure_run.executor(prov, alluredir=alluredir, verdict=message)
        )
        page = summary.summary_html(out.extras.get("summary", {}))
        shown = [f for f in files if f[0].endswith((".png", "transfer.json"))]  # the CSVs are in the JSON's folder
        shown += out.attempt("curve pictures", lambda: curves.codec_pngs(results)) or []  # damage against budget
        allure_run.write_run_result(
            alluredir,
            "nicrobust run summary",
            summary.description_html(out.extras.get("summary", {}), results),
            [("gate matrix and score card.html", page.encode())] + shown,
            status,
            message,
        )
    out.written.append(alluredir + "/")


class RunWriter(Outputs):
    """The plugin's writer: the partial JSON as results arrive, everything at the end, the terminal."""

    def __init__(self, config, session):
        super().__init__()
        self.thresholds = session.thresholds
        self.baseline = session.baseline
        self.json_path = config.getoption("nicrobust_json")
        self.alluredir = getattr(config.option, "allure_report_dir", None)
        self.shard = config.getoption("nicrobust_shard")
        self.started = time.time()
        self.facts = provenance.run_facts(config, self.thresholds)
        self.suite_hashes: dict = {}
        self.collected: list[str] | None = None
        self.partial_failed = False
        self.stopped: dict | None = None  # why the run did not run every selected test (set at finish)

    def set_collected(self, ids: list[str], suite_files: set[str]) -> None:
        """The robustness tests the run collected (after -k, heavy and the shard) and their suite files,
        hashed now: a shard that ran no test still names its suites."""
        self.collected = sorted(ids)
        for path in suite_files - set(self.suite_hashes):
            self.suite_hashes[path] = sha256_or_none(path)

    def provenance(self, results) -> dict:
        return provenance.collect(self.facts, self.suite_hashes, results, self.started, time.time())

    def skeleton(self) -> None:
        """The JSON at the session's start: ``"complete": false``, the provenance, no tests yet."""
        self.progress([])

    def progress(self, results: list[dict], running: dict | None = None) -> None:
        """Rewrite the partial JSON now (every finished test on disk before the next one reports).

        A folder that turned read-only or full is one warning (the first failure), not a traceback;
        the next record tries again."""
        if not self.json_path:
            return
        extras = {"running": running} if running else None
        if any(r.get("failures") for r in results):  # a finding is on disk as soon as its test ends
            try:
                bitstream_files.save(results, self.json_path)
            except (OSError, ValueError) as exc:
                if not self.partial_failed:
                    self.problems.append(f"bitstream findings not written: {type(exc).__name__}: {exc}")
                    self.partial_failed = True
        doc = run_document(self.provenance(results), results, complete=False, extras=extras, collected=self.collected)
        try:
            write_json_atomic(self.json_path, doc)
        except OSError as exc:
            if not self.partial_failed:
                self.problems.append(f"partial results JSON {self.json_path} not written: {type(exc).__name__}: {exc}")
                self.partial_failed = True

    def running(self, results: list[dict], test_id: str, seconds: float) -> None:
        """The partial JSON, naming the test that starts now and its limit (a process that dies in it says so)."""
        self.progress(results, {"id": test_id, "limit_s": seconds, "started": provenance.iso(time.time())})

    def finish(self, results: list[dict], stopped: dict | None = None) -> None:
        self.stopped = stopped
        comparison = self.attempt("comparison", lambda: run_comparison(results, self.baseline))
        if not (self.json_path or self.alluredir):
            self.extras = {"comparison": comparison}
            return
        write_outputs(
            self,
            self.provenance(results),
            results,
            comparison,
            self.json_path,
            self.alluredir,
            run_files=not self.shard,
            stopped=stopped,
            collected=self.collected,
        )

    def terminal_summary(self, tr, results: list[dict]) -> None:
        terminal.write(tr, results, self)
        # GitHub Actions: the job summary (a shard's too), the annotations (a shard leaves them to the merge)
        github.report(results, os.environ, tr.write_line, self.problems, annotate=not self.shard)
