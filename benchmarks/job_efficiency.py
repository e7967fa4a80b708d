"""How busy the workers of a whole job were: wall time, busy time per worker, efficiency, idle.

Runs a suite (default: the main job, ``suites/default.suite.toml``) with ``-n WORKERS`` and a fresh
adversarial-image cache (so every attack really runs), then reads the run's own results JSON:

* wall: the run's ``provenance.duration_s`` (session start to end on the controller);
* busy per worker: the sum of its tests' ``stopped - started`` (pytest's call phase), less the
  seconds they spent blocked on another worker's x' (``cache_wait:<mode>`` timings: waiting is
  not work);
* efficiency = busy / (wall × workers) (and over the tests' span, first start to last end,
  which leaves out the workers' start-up and the report);
* the longest idle stretch per worker while a test of the run was not started yet (gaps
  between its tests, before the run's last test started), and the longest cache wait.

Usage::

    python benchmarks/job_efficiency.py                       # the main job on 2 workers
    python benchmarks/job_efficiency.py --suite suites/kodak-quick.suite.toml -n 4
    python benchmarks/job_efficiency.py --json results.json    # a run already made (no run)

A results file without ``started``/``stopped`` (made before they were recorded) gives busy from
the timings' sum and no idle stretches.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def waited(test: dict) -> float:
    return sum(v for k, v in (test.get("timings") or {}).items() if k.startswith("cache_wait:"))


def analyse(doc: dict, workers: int | None = None) -> dict:
    """Figures of one results document (see the module docstring)."""
    tests = [t for t in doc["tests"] if t.get("kind") != "crashed"]
    wall = float(doc["provenance"]["duration_s"])
    by_worker: dict = {}
    for t in tests:
        by_worker.setdefault(t.get("worker") or "main", []).append(t)
    workers = workers or len(by_worker)
    timeline = all("started" in t and "stopped" in t for t in tests)
    last_start = max(t["started"] for t in tests) if timeline else None
    rows = {}
    for worker, mine in sorted(by_worker.items()):
        if timeline:
            mine = sorted(mine, key=lambda t: t["started"])
            span = sum(t["stopped"] - t["started"] for t in mine)
            first = min(t["started"] for t in tests)  # a worker that starts late idles from the first start
            gaps = [(mine[0]["started"] - first, first)] if mine[0]["started"] > first else []
            gaps += [
                (b["started"] - a["stopped"], a["stopped"]) for a, b in zip(mine, mine[1:]) if a["stopped"] < last_start
            ]
            # only the part of a gap before the run's last test started counts (a test was unstarted)
            gaps = [(min(g, last_start - at), at) for g, at in gaps]
            idle, idle_at = max(gaps, default=(0.0, None))
        else:
            span = sum(sum((t.get("timings") or {}).values()) for t in mine)
            idle, idle_at = None, None
        wait = sum(waited(t) for t in mine)
        rows[worker] = {
            "tests": len(mine),
            "busy_s": span - wait,
            "waited_s": wait,
            "longest_wait_s": max((waited(t) for t in mine), default=0.0),
            "longest_idle_s": idle,
            "idle_at_s": None if idle_at is None else idle_at - min(t["started"] for t in tests),
        }
    busy = sum(r["busy_s"] for r in rows.values())
    span = max(t["stopped"] for t in tests) - min(t["started"] for t in tests) if timeline else None
    return {
        "tests": len(tests),
        "workers": workers,
        "wall_s": wall,
        "busy_s": busy,
        "efficiency": busy / (wall * workers),
        "per_worker": rows,
        "timeline": timeline,
        "span_s": span,
        "span_efficiency": busy / (span * workers) if span else None,
    }


def report(figures: dict) -> str:
    lines = [
        f"tests {figures['tests']}, workers {figures['workers']}, wall {figures['wall_s']:.1f} s, "
        f"busy {figures['busy_s']:.1f} worker-s, efficiency {figures['efficiency']:.3f}"
    ]
    if figures["span_s"]:
        lines.append(
            f"first test start to last test end {figures['span_s']:.1f} s (the rest of the wall: start-up, "
            f"collection, the report), efficiency over it {figures['span_efficiency']:.3f}"
        )
    lines.append(
        f"{'worker':8} {'tests':>5} {'busy s':>9} {'waited s':>9} {'longest wait s':>15} {'longest idle s':>15}"
    )
    for worker, r in figures["per_worker"].items():
        idle = "n/a" if r["longest_idle_s"] is None else f"{r['longest_idle_s']:.1f}"
        if r["idle_at_s"] is not None and r["longest_idle_s"]:
            idle += f" (at {r['idle_at_s']:.0f} s)"
        lines.append(
            f"{worker:8} {r['tests']:>5} {r['busy_s']:>9.1f} {r['waited_s']:>9.1f} "
            f"{r['longest_wait_s']:>15.1f} {idle:>15}"
        )
    if not figures["timeline"]:
        lines.append("(no started/stopped in this file: busy from the timings, idle unknown)")
    return "\n".join(lines)


def run(suite: str, workers: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="nicrobust-job-") as tmp:
        out = os.path.join(tmp, "results.json")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            suite,
            "-n",
            str(workers),
            "-q",
            "-p",
            "no:cacheprovider",
            f"--nicrobust-json={out}",
            f"--nicrobust-cache={os.path.join(tmp, 'cache')}",
            *extra,
        ]
        print("$", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd)
        if not os.path.exists(out):
            sys.exit(f"the run wrote no results (exit {proc.returncode})")
        with open(out) as f:
            return json.load(f)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="suites/default.suite.toml")
    ap.add_argument("-n", "--workers", type=int, default=2)
    ap.add_argument("--json", help="read this results JSON instead of running the suite")
    ap.add_argument("pytest_args", nargs="*", help="further pytest arguments (after --)")
    args = ap.parse_args(argv)
    if args.json:
        with open(args.json) as f:
            doc = json.load(f)
    else:
        doc = run(args.suite, args.workers, args.pytest_args)
    print(report(analyse(doc, None if args.json else args.workers)))


if __name__ == "__main__":
    main()
