"""A time limit per test, so nothing can hang a CI run.

Two stages. At the limit, an alarm (SIGALRM, main thread, POSIX) raises :class:`TimeLimitExceeded`
in the test: Python code and PyTorch ops between kernels are interrupted, the test fails with a
clear message and the run goes on. Native code that never returns to the interpreter (an entropy
coder in an endless loop holding the GIL) cannot be interrupted that way; ``grace`` seconds
later :func:`faulthandler.dump_traceback_later` (a C watchdog thread that needs no GIL) prints
every thread's stack and ends the process. Under xdist the controller reports that worker's test
as crashed, starts a new worker and the run goes on; the results JSON is written by the
controller, and without xdist its partial copy holds every test finished before.

pytest's own ``faulthandler_timeout`` uses the same watchdog: while a robustness test runs, this
limit replaces it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import sys
import threading

from . import NicrobustError


class TimeLimitExceeded(NicrobustError):
    category = "time limit"


@contextlib.contextmanager
def time_limit(seconds: float, what: str, grace: float = 60.0):
    """Run the body under a limit of ``seconds`` (0 or None: no limit)."""
    if not seconds:
        yield
        return
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
