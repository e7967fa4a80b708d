"""The convergence rule: an attack converged when the last quarter of its steps added at most a tenth
of its total gain (on the best objective so far)."""

from __future__ import annotations

from pytest_nicrobust.attacks import convergence


def test_a_flattened_curve_converged_and_a_rising_one_did_not():
    flat = [0.0, 5.0, 8.0, 9.0, 9.5, 9.6, 9.6, 9.65, 9.7]  # the last quarter adds 0.1 of 9.7
    rising = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert convergence.converged(flat) and not convergence.converged(rising)


def test_the_rule_reads_the_best_so_far_not_the_last_value():
    oscillating = [0.0, 9.0, 2.0, 8.9, 1.0, 8.8, 0.5, 8.7, 0.0]  # PGD-like: the best came early
    assert convergence.best_so_far(oscillating)[-1] == 9.0
    assert convergence.converged(oscillating)


def test_an_attack_that_gained_nothing_has_converged_and_the_masking_checks_judge_it():
    assert convergence.converged([3.0, 3.0, 2.0, 3.0])


def test_the_record_block_names_the_images_that_did_not_converge():
    block = convergence.summary({"a": [0.0, 1.0, 1.0, 1.0, 1.0], "b": [0.0, 1.0, 2.0, 3.0, 4.0]}, "recon_error")
    assert block["converged"] is False and block["not_converged"] == ["b"]
    assert block["mean"] == [0.0, 1.0, 1.5, 2.0, 2.5] and block["steps"] == 5 and block["objective"] == "recon_error"
