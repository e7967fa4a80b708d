"""A run that dies keeps what it measured, and a time-limit end says which test and which limit.

Real processes and real signals: ``kill -9`` of the controller while a slow test runs, a native
hang (CompressAI's rANS coder fed NaN, unguarded: C++ that never returns while holding the
interpreter) under ``-n 0`` and under xdist, a JSON folder that turns read-only mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from helpers import write_thresholds

FAST = ["--nicrobust-metrics", "psnr,mse", "-p", "no:randomly", "--nicrobust-no-transfer", "-p", "no:cacheprovider"]

CODEC = """
import os
import time
import torch
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.codecs.base import Codec


class Faulty(Codec):
    def __init__(self, inner, mode):
        super().__init__(inner.info, inner.device)
        self.inner, self.mode = inner, mode

    def _forward_padded(self, x, proxy, generator):
        return self.inner._forward_padded(x, proxy, generator)

    def _roundtrip_padded(self, x):
        if self.mode == "slow":  # says it started, then takes its time
            open(os.environ["SLOW_STARTED"], "w").close()
            time.sleep(3600)
        elif self.mode == "exit":  # ends the process without Python's help
            os._exit(0)
        elif self.mode == "native":
            from compressai.entropy_models import EntropyBottleneck

            coder = EntropyBottleneck(4)
            coder.update(force=True)
            coder.compress(torch.full((1, 4, 2, 2), float("nan")))
        return self.inner._roundtrip_padded(x)


def make(name, quality, weights, device, mode="ok"):
    return Faulty(load_codec("bmshj2018-factorized", weights, 1, device, name), mode)
"""


def _suite(root, entries):
    codecs = "\n".join(
        f'[[codecs]]\nmodel = "faulty:make"\nname = "{name}"\nweights = "tiny.pt"\nqualities = [1]\nmode = "{mode}"\n'
        for name, mode in entries
    )
    (root / "suites" / "dies.suite.toml").write_text(
        f'images = 1\ncrop = 64\nworst_case = false\n\n{codecs}\n[[attacks]]\nname = "pgd"\nsteps = 1\n\n'
        '[[datasets]]\nname = "skimage-photos"\n'
    )


@pytest.fixture
def project(pytester, tiny_pt):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    (pytester.path / "faulty.py").write_text(CODEC)
    write_thresholds(pytester.path)
    return pytester


def _doc(path):
    return json.loads(path.read_text())


def _pytest(project, *args):
    env = dict(os.environ, PYTHONPATH=f"{project.path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_kill_9_of_the_controller_keeps_every_finished_test(project, tmp_path):
    """Three tests finish, the fourth is slow; kill -9 the moment it starts: all three are on disk."""
    _suite(project.path, [("a", "ok"), ("b", "ok"), ("c", "ok"), ("z", "slow")])
    out, started = tmp_path / "r.json", tmp_path / "slow-started"
    proc = _pytest(project, "suites", "-n", "0", f"--nicrobust-json={out}", *FAST)
    try:
        deadline = time.time() + 240
        while not started.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert started.exists(), (
            proc.communicate(timeout=30)[0][-3000:] if proc.poll() is not None else "slow never ran"
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    doc = _doc(out)
    assert doc["complete"] is False and doc["provenance"]["seed"] is not None
    finished = {t["codec"]["label"] for t in doc["tests"]}
    assert finished == {"a", "b", "c"} and {t["outcome"] for t in doc["tests"]} == {"passed"}
    assert not any("z[q1" in t["id"] for t in doc["tests"]) and "z[q1" in doc["running"]["id"]


@pytest.fixture(autouse=True)
def _slow_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("SLOW_STARTED", str(tmp_path / "slow-started"))


def test_the_skeleton_json_exists_from_the_start(project, tmp_path):
    _suite(project.path, [("z", "slow")])
    out, started = tmp_path / "r.json", tmp_path / "slow-started"
    proc = _pytest(project, "suites", "-n", "0", f"--nicrobust-json={out}", *FAST)
    try:
        deadline = time.time() + 240
        while not started.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        doc = _doc(out)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert doc["complete"] is False and doc["tests"] == []
    assert doc["provenance"]["command"][0] == "pytest" and doc["provenance"]["thresholds"]["sha256"]


def test_a_native_hang_without_xdist_names_the_test_and_keeps_the_others(project, tmp_path):
    _suite(project.path, [("a", "ok"), ("b", "ok"), ("hangs", "native")])
    out = tmp_path / "r.json"
    start = time.time()
    proc = _pytest(project, "suites", "-n", "0", "--nicrobust-timeout=30", f"--nicrobust-json={out}", *FAST)
    try:
        text = proc.communicate(timeout=240)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.time() - start < 200
    assert proc.returncode != 0
    lines = [line for line in text.splitlines() if "ran past its time limit of 30 s" in line]
    assert lines and "hangs[q1-" in lines[0] and "could not be interrupted" in lines[0], text[-3000:]
    doc = _doc(out)
    assert doc["complete"] is False
    assert {t["codec"]["label"] for t in doc["tests"]} == {"a", "b"}
    assert "hangs[q1-" in doc["running"]["id"] and doc["running"]["limit_s"] == 30


def test_os_exit_in_a_codec_without_xdist_names_the_test_and_never_exits_0(project, tmp_path):
    _suite(project.path, [("a", "ok"), ("quits", "exit")])
    out = tmp_path / "r.json"
    proc = _pytest(project, "suites", "-n", "0", f"--nicrobust-json={out}", *FAST)
    try:
        text = proc.communicate(timeout=240)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, text[-3000:]
    (line,) = [line for line in text.splitlines() if "called os._exit" in line]
    assert line.startswith("nicrobust: suites/dies.suite.toml::quits[q1-") and line.endswith(
        "called os._exit(0) (the codec's code): the run ends inside this test, exit status 1"
    )
    doc = _doc(out)
    assert doc["complete"] is False
    records = {t["name"].partition("[")[0]: t for t in doc["tests"]}
    assert records["quits"]["kind"] == "crashed" and "called os._exit(0)" in records["quits"]["error"]
    assert records["quits"]["params"]["codec"] == "quits"


def test_a_native_hang_under_xdist_is_a_time_limit_failure_in_the_table(project, tmp_path):
    _suite(project.path, [("fine", "ok"), ("hangs", "native")])
    out = tmp_path / "r.json"
    result = project.runpytest_subprocess(
        "suites", "-n", "2", "--nicrobust-timeout=30", f"--nicrobust-json={out}", *FAST, timeout=240
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*nicrobust: TimeLimitExceeded: *hangs?q1-* ran past its time limit of 30 s*"])
    assert "crashed while running" not in result.stdout.str()
    table = result.stdout.str().split("nicrobust summary")[1]
    assert any("hangs[q1]" in line and "FAIL" in line.upper() for line in table.splitlines()), table
    (hung,) = [t for t in _doc(out)["tests"] if "hangs" in t["id"]]
    assert (
        hung["error"].startswith("TimeLimitExceeded: ")
        and hung["kind"] == "case"
        and hung["params"]["codec"] == "hangs"
    )


def test_a_json_folder_that_goes_away_mid_run_is_one_warning(project, tmp_path):
    """The folder is removed once the run started (as a full or read-only disk fails: OSError)."""
    _suite(project.path, [("a", "ok"), ("b", "ok")])
    folder = tmp_path / "out"
    folder.mkdir()
    (project.path / "conftest.py").write_text(
        f"import shutil\ndef pytest_runtest_setup(item):\n    shutil.rmtree({str(folder)!r}, ignore_errors=True)\n"
    )
    result = project.runpytest_subprocess("suites", f"--nicrobust-json={folder / 'r.json'}", *FAST, timeout=240)
    result.assert_outcomes(passed=2)
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    result.stdout.fnmatch_lines(["*warning: partial results JSON *r.json not written: FileNotFoundError*"])
    result.stdout.fnmatch_lines(["*warning: results JSON not written: FileNotFoundError*"])
