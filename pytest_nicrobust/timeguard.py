"""A time limit per test, so nothing can hang a CI run.

Two stages. At the limit, an alarm (SIGALRM, main thread, POSIX) raises :class:`TimeLimitExceeded`
in the test: Python code and PyTorch ops between kernels are interrupted, the test fails with a
clear message and the run goes on. Native code that never returns to the interpreter (an entropy
coder in an endless loop holding the GIL) cannot be interrupted that way; a grace period
later :func:`faulthandler.dump_traceback_later` (a C watchdog thread that needs no GIL) prints
every thread's stack and ends the process. The first stack it prints is a label thread's, whose
one frame reads ``nicrobust: <test> ran past its time limit of N s ...`` (the watchdog can print
nothing else of ours), and it prints to the terminal's stderr as it was before pytest captured
it (``stderr_fd``), not into the captured output that dies with the process.

Under xdist the controller turns the dead worker's report into a "time limit" failure of that
test with one line (see :func:`read_marker`), starts a new worker and the run goes on; the
results JSON is written by the controller, and without xdist it already holds every test
finished before (it is rewritten as each test ends). xdist hands a crashed test's group to the
new worker, test included: :func:`once_per_run` leaves a marker while a test runs, so the test
that killed a worker fails at once instead of killing the next.

pytest's own ``faulthandler_timeout`` uses the same watchdog: while a robustness test runs, this
limit replaces it.
"""

from __future__ import annotations

import _thread
import contextlib
import faulthandler
import hashlib
import json
import os
import signal
import sys
import threading
import time
import types

from . import NicrobustError


class TimeLimitExceeded(NicrobustError):
    category = "time limit"


def limit_message(what: str, seconds: float) -> str:
    return f"{what} ran past its time limit of {seconds:g} s (--nicrobust-timeout)"


def native_message(what: str, seconds: float) -> str:
    return limit_message(what, seconds) + " in code that could not be interrupted; its process was ended"


def _hold(started, lock):
    started.release()
    lock.acquire()


@contextlib.contextmanager
def _label_thread(text: str):
    """A thread blocked in one frame whose file name is ``text``: the watchdog's dump shows it first."""
    code = _hold.__code__.replace(co_filename="nicrobust: " + text[:480], co_name="nicrobust_time_limit")
    started, lock = _thread.allocate_lock(), _thread.allocate_lock()
    started.acquire()
    lock.acquire()
    _thread.start_new_thread(types.FunctionType(code, _hold.__globals__), (started, lock))
    started.acquire()  # in its frame before the body can hold the interpreter
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def time_limit(seconds: float, what: str, grace: float | None = None, stderr_fd: int | None = None):
    """Run the body under a limit of ``seconds`` (0 or None: no limit); the process ends
    ``grace`` seconds later (default: a tenth of the limit, between 5 s and 60 s).

    ``stderr_fd``: where the watchdog prints (default: ``sys.__stderr__``), e.g. a copy of the
    terminal's stderr taken before pytest captured it.
    """
    if not seconds:
        yield
        return
    grace = min(60.0, max(5.0, seconds / 10)) if grace is None else grace
    use_alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if use_alarm:

        def on_alarm(signum, frame):
            raise TimeLimitExceeded(limit_message(what, seconds))

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    target = stderr_fd if stderr_fd is not None else sys.__stderr__  # pytest's sys.stderr has no descriptor
    watchdog = target is not None
    label = _label_thread(native_message(what, seconds)) if watchdog else contextlib.nullcontext()
    if watchdog:
        faulthandler.dump_traceback_later(seconds + grace, exit=True, file=target)
    try:
        with label:
            yield
    finally:
        if watchdog:
            faulthandler.cancel_dump_traceback_later()
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def marker_path(folder: str, run_id: str, test_id: str) -> str:
    return os.path.join(folder, hashlib.sha256(f"{run_id}\0{test_id}".encode()).hexdigest()[:32])


@contextlib.contextmanager
def once_per_run(folder: str, run_id: str, test_id: str, seconds: float = 0, record: dict | None = None):
    """Refuse a test that already ended a worker in this run (its marker outlived the process).

    The marker holds the test's id, its limit, when it started and ``record`` (what the test is:
    name, kind, params), for the controller to report a worker that died in it (:func:`read_marker`).
    """
    marker = marker_path(folder, run_id, test_id)
    if os.path.exists(marker):
        raise TimeLimitExceeded(
            f"{test_id} ended its worker earlier in this run (past --nicrobust-timeout, "
            "in code that could not be interrupted); not run again"
        )
    os.makedirs(folder, exist_ok=True)
    with open(marker, "w") as f:
        json.dump({"id": test_id, "limit_s": seconds, "started": time.time(), "record": record or {}}, f, default=str)
    try:
        yield
    finally:
        os.unlink(marker)


def read_marker(folder: str, run_id: str, test_id: str) -> dict | None:
    """The marker a dead worker left for ``test_id`` (see :func:`once_per_run`), or None."""
    try:
        with open(marker_path(folder, run_id, test_id)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("id") == test_id else None
