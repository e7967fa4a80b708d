"""Where a run's numbers came from: written at the top of the results JSON and into Allure.

Everything comes from files, hashes and package metadata. No subprocess runs, least of all
``git`` in a folder the user controls (a repository there can configure ``core.fsmonitor`` to run
any command); the plugin's own commit is read from its checkout's ``.git`` files, if it has one.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version

from ..files import sha256_or_none

PACKAGES = (
    "pytest-nicrobust",
    "torch",
    "torchvision",
    "compressai",
    "pytest",
    "pytest-xdist",
    "numpy",
    "pytorch-msssim",
    "vmaf-torch",
    "allure-pytest",
)


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def git_commit(start: str) -> str | None:
    """The commit checked out in the git work tree holding ``start``, read from ``.git`` files only."""
    folder = os.path.abspath(start)
    while True:
        dot_git = os.path.join(folder, ".git")
        if os.path.exists(dot_git):
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    if os.path.isfile(dot_git):  # a worktree or submodule: "gitdir: <path>"
        text = _read(dot_git) or ""
        if not text.startswith("gitdir:"):
            return None
        dot_git = os.path.normpath(os.path.join(folder, text.split(":", 1)[1].strip()))
    head = _read(os.path.join(dot_git, "HEAD"))
    if not head:
        return None
    if not head.startswith("ref:"):
        return head  # detached
    ref = head.split(":", 1)[1].strip()
    common = _read(os.path.join(dot_git, "commondir"))
    roots = [dot_git] + ([os.path.normpath(os.path.join(dot_git, common))] if common else [])
    for root in roots:
        value = _read(os.path.join(root, ref))
        if value:
            return value
        for line in (_read(os.path.join(root, "packed-refs")) or "").splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return None


def plugin_commit() -> str | None:
    """This plugin's commit when it runs from a git checkout (an editable install), else None."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return git_commit(os.path.dirname(package))


def platform_text() -> str:
    """``Linux-6.8.0-x86_64``: system, release and machine from ``os.uname()``-style calls only.

    ``platform.platform()`` and ``platform.processor()`` may run ``uname -p`` in a subprocess; these
    three read the kernel's answer in-process.
    """
    return "-".join(part for part in (platform.system(), platform.release(), platform.machine()) if part)


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def run_facts(config, thresholds) -> dict:
    """The part of the provenance fixed when the run starts (read once: package metadata, hashes, git files)."""
    from .. import __version__

    return {
        "plugin": {"version": __version__, "commit": plugin_commit()},
        "command": ["pytest", *config.invocation_params.args],
        "cwd": str(config.invocation_params.dir),
        "thresholds": {
            "path": os.path.abspath(thresholds.path),
            "sha256": sha256_or_none(thresholds.path),
            "plugin_default": thresholds.is_default,
        },
        "seed": config.getoption("nicrobust_seed"),
        "metrics": list(config.getoption("nicrobust_metrics")),
        "python": sys.version.split()[0],
        "platform": platform_text(),
        "packages": {p: _version(p) for p in PACKAGES},
        "shard": _shard_text(config.getoption("nicrobust_shard", None)),
    }


def collect(facts: dict, suite_hashes: dict, results: list[dict], started: float, finished: float) -> dict:
    """The provenance block of a run (controller side): ``facts`` plus what the results so far say.

    ``suite_hashes`` caches each suite file's SHA-256 from the first time a result names it.
    """
    for path in {r["suite"] for r in results if r.get("suite")} - set(suite_hashes):
        suite_hashes[path] = sha256_or_none(path)
    devices = sorted(
        {r["device"] + (f" ({r['device_name']})" if r.get("device_name") else "") for r in results if r.get("device")}
    )
    workers = sorted({r["worker"] for r in results if r.get("worker")})
    return {
        "timestamp": iso(started),
        "finished": iso(finished),
        "duration_s": round(finished - started, 3),
        **facts,
        "suites": dict(sorted(suite_hashes.items())),
        "devices": devices,
        "workers": len(workers) or 1,
        "worker_ids": workers,
    }


def _shard_text(shard) -> str | None:
    """``(2, 3)`` -> ``"2/3"``: how a shard reads in the JSON."""
    return f"{shard[0]}/{shard[1]}" if shard else None
