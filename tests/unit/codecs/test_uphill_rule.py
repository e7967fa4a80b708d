"""check-codec's uphill rule (codecs/checks/uphill.py) on measured numbers: uphill passes, a step
within the random steps' spread warns, a step below every random one or no gradient fails."""

from __future__ import annotations

import pytest

from pytest_nicrobust.codecs.checks.uphill import judge

RANDOMS = [[0.10, 0.12], [0.11, 0.13], [0.09, 0.11], [0.10, 0.10]]  # means 0.11, 0.12, 0.10, 0.10


@pytest.mark.parametrize(
    "along, norm, passed, warned",
    [
        ([0.50, 0.70], 1.0, True, False),  # far above every random step
        ([0.11, 0.11], 1.0, True, True),  # within the spread: no better than chance
        ([0.01, 0.02], 1.0, False, False),  # below every random step: downhill
        ([0.50, 0.70], 0.0, False, False),  # no gradient reaches the input
    ],
)
def test_uphill_tie_and_downhill(along, norm, passed, warned):
    ok, detail, warning = judge({"recon_error": (along, RANDOMS, norm)})
    assert ok is passed and bool(warning) is warned, (detail, warning)
    assert "0.1 to 0.12 along 4 random directions" in detail
    if not passed:
        assert "rounding without straight-through" in detail


def test_an_objective_that_responds_to_nothing_is_not_judged():
    ok, detail, warning = judge({"bitrate": ([0.0, 0.0], [[0.0, 0.0]] * 4, 0.0)})
    assert ok and not warning and "not judged" in detail
