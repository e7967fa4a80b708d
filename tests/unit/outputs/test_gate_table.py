"""The terminal's gate table lists every test that failed, a test whose worker crashed included."""

from __future__ import annotations

from pytest_nicrobust.outputs.terminal import gate_table

PASSED = {
    "id": "suites/s.toml::tiny[q1-pgd-eps7-recon_error-photos-none]",
    "name": "tiny[q1-pgd-eps7-recon_error-photos-none]",
    "kind": "case",
    "params": {
        "codec": "tiny",
        "bitrate": "q1",
        "attack": "pgd[eps7]",
        "objective": "recon_error",
        "dataset": "photos",
        "defense": "none",
    },
    "gates": [
        {
            "metric": "delta_psnr",
            "value": 1.0,
            "limit": 2.0,
            "source": "t",
            "passed": True,
            "mode": "undefended",
            "kind": "limit",
        }
    ],
    "outcome": "passed",
}
CRASHED = {
    "id": "suites/s.toml::tiny[q2-pgd-eps7-recon_error-photos-none]",
    "name": "tiny[q2-pgd-eps7-recon_error-photos-none]",
    "kind": "crashed",
    "outcome": "failed",
    "error": "worker 'gw1' crashed while running 'suites/s.toml::tiny[q2-pgd-eps7-recon_error-photos-none]'",
}


def test_a_crashed_workers_test_is_a_failing_row():
    head, first, second = gate_table([PASSED, CRASHED])
    assert head.startswith("outcome  codec")
    assert first.split() == [
        "FAIL",
        "tiny[q2-pgd-eps7-recon_error-photos-none]",
        "(its",
        "process",
        "ended)",
        "-",
        "error",
        "(see",
        "the",
        "test)",
    ]
    assert second.startswith("pass")
