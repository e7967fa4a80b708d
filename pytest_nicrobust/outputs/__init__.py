"""Run-level outputs, written by the controller (or the only process), never by xdist workers.

* ``--nicrobust-json PATH``: provenance and every test's values first, written atomically and
  refreshed while the run goes (``"complete": false``) so a killed run keeps what it measured;
  then the summaries, transfer matrices and comparison. The matrices also go as CSV/JSON (and
  heatmap PNG, when matplotlib is installed) into ``PATH-stem-transfer/``.
* ``--alluredir DIR``: environment.properties, executor.json, categories.json and a "run summary"
  result (see :mod:`.allure_run`).
* the terminal summary (see :mod:`.terminal`).

Only the JSON is essential: every extra is isolated, and its failure is a warning.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback

from ..baseline import run_comparison
from . import allure_run, provenance, summary, terminal, transfer_matrix

PROGRESS_EVERY_S = 5.0


def write_json_atomic(path: str, doc: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".nicrobust-", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, default=float)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_document(prov: dict, results: list[dict], complete: bool, extras: dict | None = None) -> dict:
    return {"format": 2, "complete": complete, "provenance": prov, "tests": results, **(extras or {})}


class RunWriter:
    """Writes the run's files as results arrive and at the end; collects what went wrong on the way."""

    def __init__(self, config, settings):
        self.config = config
        self.thresholds = settings["thresholds"]
        self.baseline = settings["baseline"]
        self.json_path = config.getoption("nicrobust_json")
        self.alluredir = getattr(config.option, "allure_report_dir", None)
        self.started = time.time()
        self.last_progress = 0.0
        self.written: list[str] = []
        self.problems: list[str] = []
        self.extras: dict = {}

    def provenance(self, results) -> dict:
        return provenance.collect(self.config, self.thresholds, results, self.started, time.time())

    def progress(self, results: list[dict]) -> None:
        """Refresh the partial JSON (at most every few seconds)."""
        if not self.json_path or time.time() - self.last_progress < PROGRESS_EVERY_S:
            return
        self.last_progress = time.time()
        self._try("partial results JSON", lambda: write_json_atomic(
            self.json_path, run_document(self.provenance(results), results, complete=False)))

    def _try(self, what: str, fn):
        try:
            return fn()
        except Exception as exc:  # an extra must never cost the results
            self.problems.append(f"{what} not written: {type(exc).__name__}: {exc}")
            if os.environ.get("NICROBUST_DEBUG"):
                traceback.print_exc()
            return None

    def finish(self, results: list[dict]) -> None:
        if not (self.json_path or self.alluredir):
            self.extras = {"comparison": self._try("comparison", lambda: run_comparison(results, self.baseline))}
            return
        prov = self.provenance(results)
        if self.json_path:  # 1. the measurements, before anything that could fail
            write_json_atomic(self.json_path, run_document(prov, results, complete=True))
            self.written.append(self.json_path)
        matrices = self._try("transfer matrices", lambda: transfer_matrix.assemble(results)) or {}
        self.extras = {"summary": self._try("summary", lambda: summary.build(results)) or {}, "transfer": matrices,
                       "comparison": self._try("comparison", lambda: run_comparison(results, self.baseline))}
        if self.json_path:  # 2. the same file with the summaries
            self._try("summaries in the JSON", lambda: write_json_atomic(
                self.json_path, run_document(prov, results, complete=True, extras=self.extras)))
        files = self._transfer_files(matrices)
        if self.alluredir:
            self._try("Allure run files", lambda: self._allure(prov, results, files))

    def _transfer_files(self, matrices: dict) -> list:
        if not matrices:
            return []
        files = self._try("transfer tables", lambda: transfer_matrix.tables(matrices)) or []
        png = self._try("transfer heatmaps", lambda: transfer_matrix.heatmaps(matrices))
        files += png or []
        if self.json_path and files:
            folder = os.path.splitext(self.json_path)[0] + "-transfer"

            def save():
                os.makedirs(folder, exist_ok=True)
                for name, body in files:
                    with open(os.path.join(folder, name), "wb") as f:
                        f.write(body)
                self.written.append(folder + "/")
            self._try("transfer files", save)
        return files

    def _allure(self, prov, results, files) -> None:
        os.makedirs(self.alluredir, exist_ok=True)
        allure_run.write_environment(self.alluredir, allure_run.environment(prov, results))
        allure_run.write_json(self.alluredir, "executor.json", allure_run.executor(prov, int(self.started)))
        allure_run.write_json(self.alluredir, "categories.json", allure_run.categories())
        page = summary.summary_html(self.extras.get("summary", {}))
        status, message = summary.verdict(results)
        shown = [f for f in files if f[0].endswith((".png", "transfer.json"))]  # the CSVs are in the JSON's folder
        allure_run.write_run_result(self.alluredir, "nicrobust run summary",
                                    summary.description_html(self.extras.get("summary", {}), results),
                                    [("gate matrix and score card.html", page.encode())] + shown, status, message)
        self.written.append(self.alluredir + "/")

    def terminal_summary(self, tr, results: list[dict]) -> None:
        terminal.write(tr, results, self)
