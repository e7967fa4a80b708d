"""A worst case below one of its members is an error naming both (the workers of an unseeded factory
built different nets: ΔMSE 0.0221 reported as the worst case of members up to 0.0236, no warning)."""

from __future__ import annotations

from pytest_nicrobust.verdict.members import below_members

MEMBER = "ours[pgd-eps7-recon_error-photos-none]"


def _record(name, kind, delta_mse, **more):
    block = {"per_image": [], "mean": {"delta_mse": delta_mse, "delta_psnr": 1.0}}
    return {
        "id": f"s.toml::{name}",
        "name": name,
        "suite": "/x/s.toml",
        "kind": kind,
        "modes": {"undefended": block},
        "outcome": "passed",
        **more,
    }


def test_a_worst_case_below_a_member_fails_naming_both():
    worst = _record(
        "ours[worst-case-photos-none]", "worst-case", 0.0221, members=[MEMBER, "ours[noise-eps7-photos-none]"]
    )
    records = [worst, _record(MEMBER, "case", 0.0236), _record("ours[noise-eps7-photos-none]", "case", 0.001)]
    (line,) = below_members(records)
    assert line == (
        f"ours[worst-case-photos-none]: its delta_mse mean 0.0221 is below its member {MEMBER}'s 0.0236: the two "
        "were measured on different codecs (one built another way in another worker?)"
    )
    assert worst["outcome"] == "failed" and worst["error"] == f"WorstCaseBelowMember: {line}"


def test_a_worst_case_at_or_above_its_members_is_left_alone():
    worst = _record("ours[worst-case-photos-none]", "worst-case", 0.0236, members=[MEMBER])
    assert below_members([worst, _record(MEMBER, "case", 0.0236)]) == [] and worst["outcome"] == "passed"
