"""``python -m pytest_nicrobust check-codec SPEC``: check a codec against the contract, one line a property.

    python -m pytest_nicrobust check-codec ourcodec.nicrobust:make_codec@3 [--weights w.pt] [--device cuda]
    python -m pytest_nicrobust check-codec nicrobust:mbt2018-mean@q2
    python -m pytest_nicrobust check-codec path/to/checkpoint.pth.tar [--model mbt2018-mean]
    python -m pytest_nicrobust check-codec suites/ours.toml --codec tcm[0.0025]   # a codec of a suite

Every property prints one PASS/FAIL line; the exit status is 1 if any failed, 2 if the codec
could not be loaded. The codec is built twice (the two builds must give the same codec) and its
properties run in a child Python
(:mod:`.check_codec_child`, in a private temporary folder, paths resolved first), so nothing the
codec does can end the check with status 0: ``SystemExit`` or ``GeneratorExit`` is a FAIL line,
and ``os._exit``, a native crash (a signal) or a hang past every limit ends the child only and is
a FAIL line naming the property (or the load) it happened in, with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

from ..codecs.checks.conformance import PROPERTIES, SAME_BUILD, TIME_LIMIT_S
from .check_codec_child import LOAD_LIMIT_S

CHILD = "pytest_nicrobust.cli.check_codec_child"
FILE_SUFFIXES = (".toml", ".pt", ".pth", ".tar", ".ckpt", ".bin", ".safetensors")  # a SPEC that names a file


def missing_file(args) -> str | None:
    """The one line for a SPEC or ``--weights`` that names a file that is not there, or None."""
    spec = args.spec
    if not os.path.exists(spec) and (os.sep in spec or spec.endswith(FILE_SUFFIXES)):
        return f"check-codec: {spec}: no such file (a suite or a checkpoint)"
    if args.weights and not os.path.exists(args.weights):
        return f"check-codec: --weights {args.weights}: no such file"
    return None


def ended(code: int) -> str:
    """How the child ended, from its exit status (negative: the signal that killed it)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}" + (" (os._exit?)" if code == 0 else "")


def child_argv(args) -> list[str]:
    """The child's arguments: every path made absolute (the child runs in a folder of its own)."""
    spec = os.path.abspath(args.spec) if os.path.exists(args.spec) else args.spec
    out = [spec, "--root", os.getcwd(), "--device", args.device, "--seed", str(args.seed)]
    if args.weights:
        out += ["--weights", os.path.abspath(args.weights)]
    for flag, value in (("--model", args.model), ("--codec", args.codec), ("--time-limit", args.time_limit)):
        if value is not None:
            out += [flag, str(value)]
    return out


def child_env() -> dict[str, str]:
    """The parent's environment, with its ``sys.path`` (its current folder in place of '')."""
    path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def run_child(argv: list[str], deadline_s: float, on_event) -> tuple[int, bool]:
    """Run the child with ``argv``; ``on_event(msg)`` for each of its JSON lines. Returns (its exit
    status, whether it was killed at ``deadline_s``)."""
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryDirectory(prefix="nicrobust-check-") as folder:
        proc = subprocess.Popen(
            [sys.executable, "-m", CHILD, "--report-fd", str(write_fd), *argv],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=child_env(),
        )
        os.close(write_fd)
        lines: queue.Queue = queue.Queue()

        def read():
            with os.fdopen(read_fd, encoding="utf-8", errors="replace") as pipe:
                for line in pipe:
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        end, killed = time.monotonic() + deadline_s, False
        try:
            while True:
                try:
                    line = lines.get(timeout=max(0.0, end - time.monotonic()))
                except queue.Empty:
                    killed = True
                    break
                if line is None:
                    break
                try:
                    on_event(json.loads(line))
                except ValueError:
                    continue
        finally:
            if proc.poll() is None and (killed or sys.exc_info()[0] is not None):
                proc.kill()
            code = proc.wait()
    return code, killed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pytest_nicrobust check-codec",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("spec", help="as in a suite: nicrobust:mbt2018-mean@q2, package.module:factory@3, or a checkpoint")
    ap.add_argument("--weights", help="weights file passed to an external factory")
    ap.add_argument("--model", help="the CompressAI architecture of a checkpoint (default: read from its keys)")
    ap.add_argument("--codec", help="with a suite file as SPEC: which of its codecs (label or label[quality])")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the run seed random weights are built under, as --nicrobust-seed (default 0)",
    )
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="what one property may take before it fails (default 120; large models on a busy CPU need more)",
    )
    args = ap.parse_args(argv)
    problem = missing_file(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    limit = args.time_limit or TIME_LIMIT_S
    deadline = 2 * LOAD_LIMIT_S + limit * (len(PROPERTIES) + 4) + 60  # every limit of the child, and a margin
    state: dict = {"loaded": False, "running": None, "results": [], "status": None}

    def on_event(msg: dict) -> None:
        event = msg.get("event")
        if event == "unloadable":
            print(msg["line"], file=sys.stderr)
            state["status"] = 2
        elif event == "load_raised":
            print(msg["line"])
            print(f"check-codec: {args.spec} could not be loaded", file=sys.stderr)
            state["status"] = 2
        elif event == "loaded":
            state["loaded"] = True
            print(msg["line"])
        elif event == "start":
            state["running"] = msg["name"]
        elif event == "result":
            state["running"] = None
            state["results"].append((msg["name"], bool(msg["passed"])))
            print(msg["line"])
        elif event == "outside":
            print(msg["line"])
            state["status"] = 1
        elif event == "done":
            state["status"] = 0

    code, killed = run_child(child_argv(args), deadline, on_event)
    if state["status"] in (1, 2):
        return state["status"]
    results = state["results"]
    if state["status"] is None:  # the child ended without saying so: the codec ended it
        how = f"did not finish within {deadline:g} s and was ended" if killed else ended(code)
        where = state["running"] or ("load" if not state["loaded"] else "between properties")
        print(f"FAIL  {where}: the check's process {how} while it ran (the codec ended it)")
        if not state["loaded"]:
            print(f"check-codec: {args.spec} could not be loaded", file=sys.stderr)
            return 2
        if state["running"]:
            results.append((state["running"], False))
    failed = [name for name, passed in results if not passed]
    total = len(PROPERTIES) + 1  # the contract's properties and SAME_BUILD
    left = [p for p in (*PROPERTIES, SAME_BUILD) if p not in {name for name, _ in results}]
    print(
        f"{len(results) - len(failed)} of {total} properties hold"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + (f"; not run: {', '.join(left)}" if left else "")
    )
    return 1 if failed or left else 0
