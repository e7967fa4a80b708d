"""The terminal's counts say what they count: "within their limits" only for tests that had a limit."""

from __future__ import annotations

from pytest_nicrobust.outputs.terminal import gate_rows

PARAMS = {
    "codec": "c",
    "bitrate": 3,
    "attack": "pgd[eps7]",
    "objective": "recon_error",
    "dataset": "d",
    "defense": "none",
}


def _test(i, outcome, gated):
    gates = [{"metric": "delta_psnr", "value": 0.1 * i, "limit": 4.5, "passed": True, "mode": "undefended"}]
    return {"id": f"s::t{i}", "name": f"t{i}", "params": PARAMS, "outcome": outcome, "gates": gates if gated else []}


def test_tests_without_a_limit_are_not_counted_as_within_their_limits():
    results = [_test(i, "passed", True) for i in range(14)] + [_test(20 + i, "skipped", False) for i in range(24)]
    lines, _, left_out = gate_rows(results, "worst")
    assert len(lines) == 1 + 10 and left_out == 4  # 14 passing with a limit, 10 shown; the 24 unlimited are elsewhere
    assert gate_rows(results, "failed")[2] == 14
