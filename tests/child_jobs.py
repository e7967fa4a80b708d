"""Jobs for the child-process tests (tests/integration/test_child.py): each misbehaves in one way."""

from __future__ import annotations

import ctypes
import os
import sys
import time


def counter(args, payload):
    """A prepared object: a dict the jobs read (``start`` counts how often it was set up)."""
    return {"value": args.get("value"), "pid": os.getpid()}


def read(state, args, payload):
    return {"value": state[args["key"]]["value"], "pid": os.getpid(), "host": state[args["key"]]["pid"]}


def echo(state, args, payload):
    print("a job's print on stdout")  # must not reach the replies
    os.write(1, b"native bytes on fd 1\n")
    return {"args": args}, payload[::-1]


def fail(state, args, payload):
    raise ValueError("bad header\nsecond line")


def busy(state, args, payload):
    while True:
        pass


def native_sleep(state, args, payload):
    ctypes.PyDLL(None).sleep(60)  # native code that keeps the GIL


def segfault(state, args, payload):
    ctypes.string_at(0)


def abort(state, args, payload):
    os.abort()


def exit_now(state, args, payload):
    os._exit(7)


def system_exit(state, args, payload):
    sys.exit(3)


def nap(state, args, payload):
    time.sleep(float(args["seconds"]))
    return {"slept": args["seconds"]}


def hang_forever(args, payload):
    while True:
        time.sleep(1)
