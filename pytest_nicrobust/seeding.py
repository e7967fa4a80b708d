"""One seed per test, derived from the run seed and the test id.

Every random choice of a test (attack start, noise proxy, defense draw) comes from
this seed, so results do not depend on the xdist worker count or order.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any


def derive_seed(run_seed: int, test_id: str, purpose: str = "") -> int:
    """A 63-bit seed from the run seed, a stable test id and an optional purpose tag."""
    digest = hashlib.sha256(f"{run_seed}\x00{test_id}\x00{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def attack_seed(run_seed: int, case: Any) -> int:
    """Seed of a case's attack: shared by its defenses and transfer tests (same x', made once)."""
    return derive_seed(run_seed, f"{os.path.basename(case.suite)}::{case.attack_id}")


def defense_seed(run_seed: int, case: Any) -> int:
    """Seed of a case's defense draw; the same draw serves x and x' (common random numbers)."""
    return derive_seed(run_seed, f"{os.path.basename(case.suite)}::{case.name}", "defense")
