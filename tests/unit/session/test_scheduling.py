"""The xdist scheduler's bookkeeping: a test is handed out only when no other worker makes an x' it needs."""

from __future__ import annotations

from pytest_nicrobust.config.cases import AttackEntry, Case, CodecEntry, DatasetEntry, TransferCase, WorstCase
from pytest_nicrobust.scheduling import Plan, tokens

CODEC = CodecEntry("tiny", "bmshj2018-factorized", "tiny.pt", 1)
OTHER = CodecEntry("tiny", "bmshj2018-factorized", "tiny.pt", 2)
DATA = DatasetEntry("skimage-photos", 2, 64)


def case(attack, objective="recon_error", defense="none", codec=CODEC):
    return Case("suites/a.toml", codec, AttackEntry(attack, "eps7", objective), DATA, defense)


def test_the_defenses_of_one_attack_share_its_x_and_transfer_cells_need_their_sources():
    assert tokens(case("pgd")) == tokens(case("pgd", defense="roll")) != tokens(case("ifgsm"))
    assert tokens(TransferCase(case("pgd"), OTHER)) == tokens(case("pgd"))
    assert tokens(case("pgd")) != tokens(case("pgd", codec=OTHER))


def test_a_worst_case_waits_for_its_members_and_a_cell_for_its_source():
    pgd, ifgsm, noise = case("pgd"), case("ifgsm"), case("noise", objective="none")
    tests = [pgd, ifgsm, noise, WorstCase((pgd, ifgsm, noise)), TransferCase(pgd, OTHER), TransferCase(ifgsm, OTHER)]
    plan = Plan(tests)
    # worker A runs pgd then ifgsm; worker B runs noise: the worst case is not ready for B
    assert not plan.ready(3, mine=[2], others=[0, 1])
    assert plan.ready(3, mine=[0, 1, 2], others=[])  # all queued before it on the same worker
    # pgd's x' is being made on the other worker: its transfer cell waits, ifgsm's does not
    assert not plan.ready(4, mine=[], others=[0]) and plan.ready(5, mine=[], others=[0])
    assert plan.pick([3, 4, 5], mine=[2], others=[0]) == 2  # only the ifgsm cell is ready
    plan.finished(0)
    assert plan.ready(4, mine=[], others=[1])  # pgd is done: its x' is in the cache
    assert not plan.ready(3, mine=[], others=[1])
    plan.finished(1), plan.finished(2)
    assert plan.ready(3, mine=[], others=[])
    assert plan.pick([3, 4], mine=[], others=[]) == 0


def test_nothing_ready_hands_out_the_first_test_left():
    pgd = case("pgd")
    plan = Plan([pgd, TransferCase(pgd, OTHER), TransferCase(pgd, "jpeg")])
    assert plan.pick([1, 2], mine=[], others=[0]) == 0


def test_tests_not_from_a_suite_need_nothing():
    plan = Plan([None, case("pgd")])
    assert plan.ready(0, mine=[], others=[1])
