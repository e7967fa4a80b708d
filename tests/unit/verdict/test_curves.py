"""ε* of a budget sweep: the budget where a gated metric first crosses its limit, interpolated
between the two points around the crossing; falls: a larger budget that did worse."""

from __future__ import annotations

from pytest_nicrobust.config.thresholds import Limit
from pytest_nicrobust.verdict.curves import crossing, eps_star, falls


def points(*pairs):
    return [{"eps": b, "mean": {"delta_psnr": v}} for b, v in pairs]


def test_the_crossing_is_interpolated_between_the_points_around_it():
    curve = points((1, 0.5), (2, 1.0), (4, 2.0), (8, 4.0))
    assert crossing(curve, "eps", "delta_psnr", 3.0) == 6.0  # halfway between 4 (2 dB) and 8 (4 dB)
    assert crossing(curve, "eps", "delta_psnr", 0.1) == 1  # the first point already crosses
    assert crossing(curve, "eps", "delta_psnr", 5.0) is None  # never crossed in the sweep


def test_eps_star_is_per_gated_metric():
    curve = [
        {"eps": 2, "mean": {"delta_psnr": 1.0, "bitrate_increase": 0.5}},
        {"eps": 4, "mean": {"delta_psnr": 3.0, "bitrate_increase": 0.6}},
    ]
    found = eps_star(
        curve,
        "eps",
        {"delta_psnr": Limit("delta_psnr", 2.0, "t"), "bitrate_increase": Limit("bitrate_increase", 1.0, "t")},
    )
    assert found == {"delta_psnr": 3.0}


def test_a_curve_that_falls_as_the_budget_grows_is_reported():
    assert falls(points((1, 1.0), (2, 2.0), (4, 3.0)), "eps", ["delta_psnr"]) == []
    fell = falls(points((1, 1.0), (2, 2.0), (4, 1.5)), "eps", ["delta_psnr"])
    assert fell == [{"metric": "delta_psnr", "from": 2, "to": 4, "value": 1.5, "before": 2.0}]
