"""A child Python that runs jobs for its parent, so that a native crash or a hang ends the child, never the parent.

Standard library only (ground floor). The parent holds a :class:`Child`; the child is
``python -m pytest_nicrobust.child`` (:func:`main`), started on first use.

Contract
--------
* **Jobs** are functions named ``"package.module:function"``, imported in the child. A job runs
  as ``fn(state, args, payload)`` and returns a JSON-able value, or ``(value, bytes)``; ``args`` is
  JSON-able, ``payload`` and the returned bytes are raw. Only plain data crosses: no pickles.
* **Prepared objects**: :meth:`Child.prepare` runs ``fn(args, payload)`` in the child and keeps
  what it returns as ``state[key]`` for later jobs (a loaded codec). It is set up once and again
  after the child is restarted; :meth:`Child.release` drops it.
* **Replies** (:class:`Reply`): ``status`` is ``ok`` (``value``, ``payload``), ``error`` (the job
  raised an Exception: ``error`` is its one-line text), ``hang`` (no answer within the job's
  ``timeout``; the process running it was killed) or ``crash`` (the process running the job ended:
  a signal, ``os._exit``, or a ``SystemExit``/``KeyboardInterrupt`` the job raised, which would
  have ended a process; ``error`` says which and ends with what the process wrote to stderr:
  the fatal error line and the innermost frames ``faulthandler`` printed).
* **Never hangs the parent**: every write to and read from the child has a deadline; a child that
  misses one is killed with its whole process group (it runs in a session of its own), and the
  parent's own exceptions (its time limit's alarm, Ctrl-C) kill it too before they propagate.
  The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and end of input).
* **Restarts**: with ``fork=True`` (the default) jobs run in a *runner* forked from the child
  after it prepared its objects: a crash or a hang costs a new fork (milliseconds), not a new
  interpreter, and ``fresh=True`` runs a job in a new runner. With ``fork=False`` the child runs
  jobs itself (needed once a job has used CUDA, which does not survive a fork): a crash or a hang
  then costs a new child, whose prepared objects are set up again.
* **Where**: the child starts in a private temporary folder (never a user's folder), with the
  parent's ``sys.path`` and environment, ``OMP_NUM_THREADS=1`` unless set, stdout sent to stderr
  (a job's prints cannot corrupt the replies) and stdin closed.

Callers: the bitstream tests (:mod:`pytest_nicrobust.run.bitstreams`) decode mutated streams in
one; ``check-codec`` can run each property as a job and survive a codec that calls ``os._exit``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

_HEAD = struct.Struct(">II")  # lengths of the JSON header and of the raw payload that follow
MARGIN_S = 5.0  # what the parent adds to a job's limit for the child to report a runner's hang
START_TIMEOUT_S = 120.0


@dataclass
class Reply:
    """What a job gave back (see the module docstring)."""

    status: str  # ok | error | hang | crash
    value: Any = None
    payload: bytes = b""
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ChildError(RuntimeError):
    """The child could not be started, or could not set a prepared object up again."""


def _pack(head: dict[str, Any], payload: bytes = b"") -> bytes:
    body = json.dumps(head).encode()
    return _HEAD.pack(len(body), len(payload)) + body + payload


def ended(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is None:
        return "the process ended"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"the process exited with status {code}"


def fault_lines(text: str) -> str:
    """The fatal error line and the innermost frames of what a dying process wrote to stderr."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith("Fatal Python error")]
    frames = [ln for ln in lines if ln.startswith("File ")]
    picked = fatal[:1] + frames[:3] if fatal or frames else lines[-3:]
    return " | ".join(picked)[:1200]


# ------------------------------------------------------------------------------------------- parent


def _exit_code(proc: subprocess.Popen[bytes] | None) -> int | None:
    """The exit code of a child whose pipe closed (it is ending; killed if it lingers)."""
    if proc is None:
        return None
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None


class _Missed(Exception):
    """A deadline passed while writing to or reading from the child."""


class _Gone(Exception):
    """The child's end of the pipe closed."""


class Child:
    """The parent's handle on one child process (see the module docstring)."""

    def __init__(self, name: str = "child", fork: bool = True, start_timeout: float = START_TIMEOUT_S):
        self.name, self.fork, self.start_timeout = name, fork, start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.prepared: dict[str, tuple[str, dict[str, Any], bytes, float]] = {}  # key -> (job, args, payload, timeout)
        self.ready: set[str] = set()  # keys prepared in the running child
        self.starts = 0
        self._stderr: IO[bytes] | None = None
        self._home: str | None = None
        self._fds = (-1, -1)  # the child's stdin and stdout, as this process writes and reads them

    # -- the process

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _start(self) -> None:
        import pytest_nicrobust

        if self._stderr is None:
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the child's life
        self._home = self._home or tempfile.mkdtemp(prefix="nicrobust-child-")
        root = os.path.dirname(os.path.dirname(os.path.abspath(pytest_nicrobust.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_nicrobust.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=self._home,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._fds = (self.proc.stdin.fileno(), self.proc.stdout.fileno())
        os.set_blocking(self._fds[0], False)
        self.starts += 1
        self.ready = set()
        path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
        reply = self._exchange({"op": "hello", "path": path, "fork": self.fork}, b"", self.start_timeout)
        if not reply.ok:
            self._kill()
            raise ChildError(f"{self.name}: the child process did not start ({reply.status}: {reply.error})")

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        self.ready = set()
        self._fds = (-1, -1)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def close(self) -> None:
        """End the child (politely, then by force) and drop its files."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                self._send(_pack({"op": "exit"}), time.monotonic() + 1.0)
                proc.wait(2)
        self._kill()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._kill()

    # -- I/O with deadlines

    def _send(self, data: bytes, deadline: float) -> None:
        fd = self._fds[0]
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise _Missed
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue
            except OSError:
                raise _Gone from None

    def _read(self, n: int, deadline: float) -> bytes:
        data = _read_exact(self._fds[1], n, deadline)
        if data is None:
            raise _Gone
        return data

    def _stderr_since(self, offset: int) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(offset)
            return self._stderr.read(1 << 20).decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def _exchange(self, head: dict[str, Any], payload: bytes, wait: float) -> Reply:
        offset = self._stderr.seek(0, os.SEEK_END) if self._stderr is not None else 0
        start = time.monotonic()
        deadline = start + wait
        try:
            self._send(_pack(head, payload), deadline)
            n, m = _HEAD.unpack(self._read(_HEAD.size, deadline))
            body = self._read(n + m, deadline)
        except _Missed:
            self._kill()
            return Reply("hang", error=f"no answer within {wait:g} s", seconds=time.monotonic() - start)
        except _Gone:
            code = _exit_code(self.proc)
            self._kill()
            text = fault_lines(self._stderr_since(offset))
            return Reply("crash", error=ended(code) + (f": {text}" if text else ""), seconds=time.monotonic() - start)
        except BaseException:  # the parent's time limit or Ctrl-C in the middle of an exchange
            self._kill()
            raise
        doc = json.loads(body[:n])
        reply = Reply(doc["status"], doc.get("value"), body[n:], doc.get("error", ""), doc.get("seconds", 0.0))
        if reply.status == "crash":
            text = fault_lines(self._stderr_since(offset))
            reply.error += f": {text}" if text else ""
        return reply

    # -- jobs

    def _ensure(self, key: str | None = None) -> Reply | None:
        """A running child with ``key`` (and only what is asked) prepared; a failed preparation's reply."""
        if not self.alive():
            self._kill()
            self._start()
        keys = [key] if key is not None else []
        for k in keys:
            if k in self.ready:
                continue
            job, args, payload, timeout = self.prepared[k]
            reply = self._exchange({"op": "prepare", "key": k, "job": job, "args": args}, payload, timeout)
            if not reply.ok:
                return reply
            self.ready.add(k)
        return None

    def prepare(
        self, key: str, job: str, args: dict[str, Any] | None = None, payload: bytes = b"", timeout: float = 600.0
    ) -> Reply:
        """Run ``job(args, payload)`` in the child and keep its result as ``state[key]``."""
        self.prepared[key] = (job, args or {}, payload, timeout)
        self.ready.discard(key)
        failed = self._ensure(key)
        if failed is not None:
            del self.prepared[key]
            return failed
        return Reply("ok")

    def release(self, key: str) -> None:
        """Forget ``state[key]`` (in the child too, when it runs)."""
        self.prepared.pop(key, None)
        if key in self.ready and self.alive():
            self.ready.discard(key)
            self._exchange({"op": "release", "key": key}, b"", 30.0)

    def call(
        self,
        job: str,
        args: dict[str, Any] | None = None,
        payload: bytes = b"",
        timeout: float = 60.0,
        needs: str | None = None,
        fresh: bool = False,
    ) -> Reply:
        """Run ``job(state, args, payload)`` within ``timeout`` seconds; ``needs``: a prepared key
        (set up again first if the child was restarted); ``fresh``: in a new runner (``fork=True``)."""
        failed = self._ensure(needs)
        if failed is not None:
            return failed
        head = {"op": "call", "job": job, "args": args or {}, "timeout": timeout, "fresh": fresh}
        return self._exchange(head, payload, timeout + (MARGIN_S if self.fork else 0.0))


# -------------------------------------------------------------------------------------------- child


def _read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """``n`` bytes from ``fd``; None at its end; past ``deadline`` (monotonic), :class:`_Missed`."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _Missed
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> tuple[dict[str, Any], bytes] | None:
    head = _read_exact(fd, _HEAD.size)
    if head is None:
        return None
    n, m = _HEAD.unpack(head)
    body = _read_exact(fd, n + m)
    return None if body is None else (json.loads(body[:n]), body[n:])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _function(job: str) -> Callable[..., Any]:
    module, _, name = job.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return fn


def _run(job: str, *args: Any, keep: bool = False) -> tuple[dict[str, Any], bytes]:
    """Run a job; ``keep``: its result is an object to keep (a prepared one), not a reply."""
    start = time.perf_counter()
    try:
        out = _function(job)(*args)
    except Exception as exc:
        text = " ".join(str(exc).split())
        return {
            "status": "error",
            "error": f"{type(exc).__name__}: {text}"[:2000],
            "seconds": time.perf_counter() - start,
        }, b""
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, GeneratorExit: they end a process
        return {
            "status": "crash",
            "error": f"raised {type(exc).__name__}({exc!s:.200}), which ends a process",
            "seconds": time.perf_counter() - start,
        }, b""
    if keep:
        return {"status": "ok", "value": out, "seconds": time.perf_counter() - start}, b""
    value, data = out if isinstance(out, tuple) else (out, b"")
    return {"status": "ok", "value": value, "seconds": time.perf_counter() - start}, bytes(data or b"")


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Runner:
    """A forked copy of the child that runs the jobs; replaced after a crash or a hang."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.sock = socket.socket()  # replaced by the runner's end of a socket pair when one starts
        self.sock.close()

    def start(self, state: dict[str, Any], parent_fds: tuple[int, ...]) -> None:
        mine, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                mine.close()
                for fd in parent_fds:  # so that the parent sees the child's death, not a runner's open pipe
                    os.close(fd)
                _die_with_parent()
                while True:
                    msg = _receive(theirs.fileno())
                    if msg is None:
                        break
                    head, payload = msg
                    reply, data = _run(head["job"], state, head["args"], payload)
                    _write_all(theirs.fileno(), _pack(reply, data))
            finally:
                os._exit(0)
        theirs.close()
        self.pid, self.sock = pid, mine

    def _reap(self, kill: bool) -> int | None:
        if self.pid is None:
            return None
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        self.sock.close()
        self.pid = None
        return os.waitstatus_to_exitcode(status)

    def stop(self) -> None:
        self._reap(kill=True)

    def run(self, head: dict[str, Any], payload: bytes, timeout: float) -> tuple[dict[str, Any], bytes]:
        start = time.monotonic()
        fd = self.sock.fileno()
        try:
            _write_all(fd, _pack(head, payload))
        except OSError:
            return {"status": "crash", "error": ended(self._reap(kill=False))}, b""
        buf, need, deadline = b"", None, start + timeout
        while need is None or len(buf) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._reap(kill=True)
                return {
                    "status": "hang",
                    "error": f"no answer within {timeout:g} s",
                    "seconds": time.monotonic() - start,
                }, b""
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return {
                    "status": "crash",
                    "error": ended(self._reap(kill=False)),
                    "seconds": time.monotonic() - start,
                }, b""
            buf += chunk
            if need is None and len(buf) >= _HEAD.size:
                n, m = _HEAD.unpack(buf[: _HEAD.size])
                need = _HEAD.size + n + m
        n = _HEAD.unpack(buf[: _HEAD.size])[0]
        return json.loads(buf[_HEAD.size : _HEAD.size + n]), buf[_HEAD.size + n : need]


def main() -> None:
    """The child's loop: answer the parent's messages until it says exit or goes away."""
    import faulthandler

    out_fd, in_fd = os.dup(1), os.dup(0)
    os.dup2(2, 1)  # prints of jobs (Python or native) go to stderr, never into the replies
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _die_with_parent()
    faulthandler.enable()  # a fatal signal prints the stack to stderr, which the parent reads
    state: dict[str, Any] = {}
    runner, fork = _Runner(), True
    reply: dict[str, Any]
    while True:
        msg = _receive(in_fd)
        if msg is None:
            break
        head, payload = msg
        op = head.get("op")
        if op == "exit":
            break
        if op == "hello":
            sys.path[:] = head["path"]
            fork = bool(head["fork"])
            reply, data = {"status": "ok", "value": {"pid": os.getpid()}}, b""
        elif op == "prepare":
            runner.stop()  # the next runner is forked after this, with the new object
            reply, data = _run(head["job"], head["args"], payload, keep=True)
            if reply["status"] == "ok":
                state[head["key"]], reply["value"] = reply["value"], None
        elif op == "release":
            runner.stop()
            state.pop(head["key"], None)
            reply, data = {"status": "ok"}, b""
        elif not fork:
            reply, data = _run(head["job"], state, head["args"], payload)
        else:
            if head.get("fresh"):
                runner.stop()
            if runner.pid is None:
                runner.start(state, (in_fd, out_fd))
            reply, data = runner.run(head, payload, head["timeout"])
        _write_all(out_fd, _pack(reply, data))
    runner.stop()


if __name__ == "__main__":
    main()
