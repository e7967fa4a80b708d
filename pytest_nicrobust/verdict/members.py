"""A worst case against its members: it takes, per image, the worst value over its members, so its
mean of a gated delta is never below a member's. When it is, the two were measured on different
codecs (a codec built another way in another xdist worker, random weights from a generator of its
own): the worst case is an error naming both, never a silently low headline number.

Pure (records in, records marked): the controller runs it over a run's records, ``merge`` over the
shards' records (a worst case and its members run in one shard).
"""

from __future__ import annotations

import math

from ..metrics.registry import GATES
from ..names import mode_suffix
from ..record import means_of

TOLERANCE = 1e-9  # relative: the mean of per-image maxima is never below a member's in exact arithmetic


def below_members(results: list[dict]) -> list[str]:
    """Mark each worst case whose mean of a gated delta is below one of its members' as failed with an
    error naming both; returns those errors (one line each)."""
    by_name = {(r.get("suite"), r.get("name")): r for r in results}
    found = []
    for worst in results:
        if worst.get("kind") != "worst-case" or not worst.get("members"):
            continue
        for member_name in worst["members"]:
            member = by_name.get((worst.get("suite"), member_name))
            why = member and _below(worst, member)
            if why:
                line = f"{worst['name']}: {why}"
                worst.update(outcome="failed", error=f"WorstCaseBelowMember: {line}")
                found.append(line)
                break
    return found


def _means(record: dict, mode: str | None) -> dict:
    return means_of(record, mode) if mode else (record.get("mean") or {})


def _below(worst: dict, member: dict) -> str | None:
    for mode in list(worst.get("modes") or {}) or [None]:
        now, then = _means(worst, mode), _means(member, mode)
        for metric in GATES:
            a, b = now.get(metric), then.get(metric)
            if not (isinstance(a, float) and isinstance(b, float)) or math.isnan(a) or math.isnan(b):
                continue
            if a < b - TOLERANCE * max(1.0, abs(b)):
                return (
                    f"its {metric}{mode_suffix(mode or '')} mean {a:.4g} is below its member {member['name']}'s {b:.4g}: "
                    "the two were measured on different codecs (one built another way in another worker?)"
                )
    return None
