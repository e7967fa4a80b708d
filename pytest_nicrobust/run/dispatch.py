"""Which function runs which kind of test on a worker (the one place that maps a kind to its room)."""

from __future__ import annotations

import importlib

RUNNERS = {
    "case": ("pytest_nicrobust.run.case", "run_case"),
    "worst-case": ("pytest_nicrobust.run.worst_case", "run_worst_case"),
    "transfer": ("pytest_nicrobust.run.transfer", "run_transfer"),
    "curve": ("pytest_nicrobust.run.curve", "run_curve"),
    "bitstream": ("pytest_nicrobust.run.bitstreams", "run_bitstream"),
}


def run_test(case, ctx, result: dict, defense=None) -> None:
    """Fill ``result`` for ``case`` (any kind of :mod:`pytest_nicrobust.config.cases`); raise on a failed gate."""
    module, name = RUNNERS[case.kind]
    getattr(importlib.import_module(module), name)(case, ctx, result, defense)
