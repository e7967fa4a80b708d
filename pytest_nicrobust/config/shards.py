"""Splitting a suite across CI jobs: ``--nicrobust-shard K/N``.

Items are split by model (the xdist group), so a model loads in one job only, and every
worst-case and transfer item runs in the job where its source cases run (it reuses their rows
and x'). Groups go to shards by estimated cost (each test's ``cost``), largest first, each to the least loaded shard
(ties broken by name): the split depends only on the collected suite, never on timing, so every
job computes the same one. ``python -m pytest_nicrobust merge`` puts the shards' JSON back together.
"""

from __future__ import annotations

import math


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> (2, 3): the second of three shards (1-based)."""
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit() or not 1 <= int(k) <= int(n):
        raise ValueError(f"--nicrobust-shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/3")
    return int(k), int(n)


def assign(costs: dict[str, float], shards: int) -> dict[str, int]:
    """{group: shard 1..N}, the groups balanced by cost (longest processing time first)."""
    load = [0.0] * shards
    out = {}
    for group, cost in sorted(costs.items(), key=lambda kv: (-kv[1], kv[0])):
        best = min(range(shards), key=lambda i: (load[i], i))
        out[group] = best + 1
        load[best] += cost if math.isfinite(cost) else 0.0
    return out
