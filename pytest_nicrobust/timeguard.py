"""A time limit per test, so nothing can hang a CI run.

Two stages. At the limit, an alarm (SIGALRM, main thread, POSIX) raises :class:`TimeLimitExceeded`
in the test: Python code and PyTorch ops between kernels are interrupted, the test fails with a
clear message and the run goes on. Native code that never returns to the interpreter (an entropy
coder in an endless loop holding the GIL) cannot be interrupted that way; a grace period
later :func:`faulthandler.dump_traceback_later` (a C watchdog thread that needs no GIL) prints
every thread's stack and ends the process. Under xdist the controller reports that worker's test
as crashed, starts a new worker and the run goes on; the results JSON is written by the
controller, and without xdist its partial copy holds every test finished before. xdist hands a
crashed test's group to the new worker, test included: :func:`once_per_run` leaves a marker
while a test runs, so the test that killed a worker fails at once instead of killing the next.

pytest's own ``faulthandler_timeout`` uses the same watchdog: while a robustness test runs, this
limit replaces it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import os
import signal
import sys
import threading

from . import NicrobustError


class TimeLimitExceeded(NicrobustError):
    category = "time limit"


@contextlib.contextmanager
def time_limit(seconds: float, what: str, grace: float | None = None):
    """Run the body under a limit of ``seconds`` (0 or None: no limit); the process ends
    ``grace`` seconds later (default: a tenth of the limit, between 5 s and 60 s)."""
    if not seconds:
        yield
        return
    grace = min(60.0, max(5.0, seconds / 10)) if grace is None else grace
    use_alarm = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if use_alarm:
        def on_alarm(signum, frame):
            raise TimeLimitExceeded(f"{what} ran past its time limit of {seconds:g} s (--nicrobust-timeout)")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    watchdog = sys.__stderr__ is not None  # pytest's captured stderr has no file descriptor
    if watchdog:
        faulthandler.dump_traceback_later(seconds + grace, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        if watchdog:
            faulthandler.cancel_dump_traceback_later()
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def once_per_run(folder: str, run_id: str, test_id: str):
    """Refuse a test that already ended a worker in this run (its marker outlived the process)."""
    marker = os.path.join(folder, hashlib.sha256(f"{run_id}\0{test_id}".encode()).hexdigest()[:32])
    if os.path.exists(marker):
        raise TimeLimitExceeded(f"{test_id} ended its worker earlier in this run (past --nicrobust-timeout, "
                                "in code that could not be interrupted); not run again")
    os.makedirs(folder, exist_ok=True)
    with open(marker, "w") as f:
        f.write(test_id)
    try:
        yield
    finally:
        os.unlink(marker)
