"""The child process (pytest_nicrobust/child.py): jobs that crash, hang or exit end the child, never the parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pytest_nicrobust.child import Child, ChildError, fault_lines
from pytest_nicrobust.timeguard import TimeLimitExceeded, time_limit

JOBS = "child_jobs"


@pytest.fixture(params=[True, False], ids=["fork", "no-fork"])
def child(request):
    c = Child("test", fork=request.param)
    assert c.prepare("obj", f"{JOBS}:counter", {"value": 41}).ok
    yield c
    c.close()
    assert not c.alive()


def test_a_job_gets_its_arguments_and_prints_cannot_corrupt_the_replies(child):
    reply = child.call(f"{JOBS}:echo", {"a": [1, 2]}, b"abc", needs="obj")
    assert reply.ok and reply.value == {"args": {"a": [1, 2]}} and reply.payload == b"cba"
    assert child.call(f"{JOBS}:read", {"key": "obj"}, needs="obj").value["value"] == 41


def test_an_exception_is_an_error_of_one_line(child):
    reply = child.call(f"{JOBS}:fail", needs="obj")
    assert reply.status == "error" and reply.error == "ValueError: bad header second line"
    assert child.call(f"{JOBS}:read", {"key": "obj"}, needs="obj").value["value"] == 41


@pytest.mark.parametrize("job", ["busy", "native_sleep"])
def test_a_job_past_its_limit_is_a_hang_and_the_next_job_runs(child, job):
    start = time.monotonic()
    reply = child.call(f"{JOBS}:{job}", timeout=1.0, needs="obj")
    assert reply.status == "hang" and "within 1 s" in reply.error
    assert time.monotonic() - start < 1.0 + (5.5 if child.fork else 0.5)
    assert child.call(f"{JOBS}:read", {"key": "obj"}, needs="obj").value["value"] == 41  # set up again if it had to


@pytest.mark.parametrize(
    "job, said",
    [
        ("segfault", "killed by SIGSEGV: Fatal Python error: Segmentation fault"),
        ("abort", "killed by SIGABRT: Fatal Python error: Aborted"),
        ("exit_now", "the process exited with status 7"),
        ("system_exit", "raised SystemExit(3), which ends a process"),
    ],
)
def test_a_crash_is_reported_with_how_the_process_ended_and_the_child_goes_on(child, job, said):
    starts = child.starts
    reply = child.call(f"{JOBS}:{job}", needs="obj")
    assert reply.status == "crash" and reply.error.startswith(said), reply.error
    if job in ("segfault", "abort"):
        assert f"in {job}" in reply.error  # the innermost frame faulthandler printed
    again = child.call(f"{JOBS}:read", {"key": "obj"}, needs="obj")
    assert again.ok and again.value["value"] == 41
    # fork: the runner died and a new one was forked from the same child; no fork: a new child, set up again
    assert child.starts == starts + (1 if not child.fork and job != "system_exit" else 0)


def test_fork_runs_jobs_in_a_runner_and_fresh_gives_a_new_one():
    with Child("test") as c:
        assert c.prepare("obj", f"{JOBS}:counter", {"value": 1}).ok
        first = c.call(f"{JOBS}:read", {"key": "obj"}, needs="obj").value
        assert first["pid"] != first["host"]  # prepared in the child, read in a forked runner
        assert c.call(f"{JOBS}:read", {"key": "obj"}, needs="obj").value["pid"] == first["pid"]  # reused
        assert c.call(f"{JOBS}:read", {"key": "obj"}, needs="obj", fresh=True).value["pid"] != first["pid"]


def test_a_failed_or_hanging_preparation_is_a_reply_and_is_not_kept():
    with Child("test") as c:
        reply = c.prepare("bad", f"{JOBS}:nowhere", {})
        assert reply.status == "error" and "AttributeError" in reply.error and "bad" not in c.prepared
        reply = c.prepare("slow", f"{JOBS}:hang_forever", timeout=1.0)
        assert reply.status == "hang" and not c.alive() and "slow" not in c.prepared
        assert c.prepare("obj", f"{JOBS}:counter", {"value": 5}).ok
        c.release("obj")
        assert c.call(f"{JOBS}:read", {"key": "obj"}).status == "error"  # KeyError: released


def test_the_parents_own_time_limit_ends_the_child_and_propagates():
    with Child("test", fork=False) as c:
        assert c.prepare("obj", f"{JOBS}:counter", {"value": 2}).ok
        with pytest.raises(TimeLimitExceeded), time_limit(1.0, "the test"):
            c.call(f"{JOBS}:nap", {"seconds": 30}, timeout=60)
        assert not c.alive()
        assert c.call(f"{JOBS}:read", {"key": "obj"}, needs="obj").value["value"] == 2


def test_a_child_that_cannot_start_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(ChildError, match="did not start"):
        Child("test").call(f"{JOBS}:echo")


def test_the_child_and_its_runner_die_with_their_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path[:0] = {[os.path.dirname(os.path.dirname(__file__))]!r}
        from pytest_nicrobust.child import Child
        c = Child("orphan")
        c.prepare("obj", "child_jobs:counter", {{"value": 0}})
        ids = c.call("child_jobs:read", {{"key": "obj"}}, needs="obj").value
        print(ids["host"], ids["pid"], flush=True)
        c.call("child_jobs:busy", timeout=600)
    """)
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    host, runner = (int(p) for p in parent.stdout.readline().split())
    time.sleep(0.5)  # the runner is busy now
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(p) for p in (host, runner)):
        time.sleep(0.1)
    assert not any(_running(p) for p in (host, runner))


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_fault_lines_pick_the_fatal_line_and_the_innermost_frames():
    text = (
        "Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n"
        '  File "/x/codec.py", line 9 in decode\n  File "/x/child.py", line 3 in _run\n'
        '  File "/x/child.py", line 2 in start\n  File "/x/child.py", line 1 in main\n'
    )
    assert fault_lines(text) == (
        'Fatal Python error: Segmentation fault | File "/x/codec.py", line 9 in decode | '
        'File "/x/child.py", line 3 in _run | File "/x/child.py", line 2 in start'
    )
