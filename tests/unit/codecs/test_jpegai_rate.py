"""JPEG AI's bit counting and the hyperprior's stand-ins on tensors made here (no tree, no torch model)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from pytest_nicrobust.codecs.kinds.jpegai.hyperprior import TileState, soft_coded, zero_valued  # noqa: E402
from pytest_nicrobust.codecs.kinds.jpegai.rate import index_slope, residual_bits, values_bits  # noqa: E402


def table(rows: int = 4, half: int = 3) -> torch.Tensor:
    """Bits of values -half..half under ``rows`` tables: wider tables make 0 dearer and large values cheaper."""
    values = torch.arange(-half, half + 1).float()
    width = torch.arange(1, rows + 1).float()[:, None]
    return values[None, :] ** 2 / width**2 + torch.log2(width)


def test_values_bits_reads_the_table_and_clamps():
    cost = table()
    index = torch.tensor([[0, 3, 1]])
    got = values_bits(cost, index, torch.tensor([[0.0, 2.0, 99.0]]))
    assert torch.allclose(got, torch.tensor([[cost[0, 3], cost[3, 5], cost[1, 6]]]))


def test_index_slope_is_the_difference_of_the_neighbouring_tables():
    cost = table()
    index = torch.tensor([[0, 1, 3]])
    values = torch.tensor([[0.0, 0.0, 3.0]])
    got = index_slope(cost, index, values)
    want = [cost[1, 3] - cost[0, 3], (cost[2, 3] - cost[0, 3]) / 2, cost[3, 6] - cost[2, 6]]  # one-sided at the ends
    assert torch.allclose(got, torch.tensor([want]))
    assert got[0, 0] > 0 and got[0, 2] < 0  # a wider table: 0 dearer, a large value cheaper


def test_residual_bits_are_exact_under_ste_and_move_with_the_residual():
    cost = table(2, 6)
    index = torch.tensor([[1, 1]])
    resid = torch.tensor([[2.0, -3.0]], requires_grad=True)
    bits = residual_bits(resid, index, cost, "ste")
    assert torch.allclose(bits, values_bits(cost, index, resid))
    (grad,) = torch.autograd.grad(bits.sum(), resid)
    assert grad[0, 0] > 0 and grad[0, 1] < 0  # larger magnitude, more bits


def test_the_soft_skip_decision_is_one_half_at_the_threshold():
    skip = SimpleNamespace(unscaled_sigma_precision=7, skip_thr_precision=7, thr_skip=382)
    scales = torch.tensor([0.0, 382.0, 382.0 + 128, 4000.0])
    soft = soft_coded(skip, scales).detach()
    assert float(soft[1]) == 0.5 and float(soft[0]) < 0.1 and float(soft[3]) > 0.99
    assert abs(float(soft[2]) - float(torch.sigmoid(torch.tensor(1.0)))) < 1e-6  # one index step wide
    finer = SimpleNamespace(unscaled_sigma_precision=9, skip_thr_precision=7, thr_skip=382)
    assert float(soft_coded(finer, torch.tensor([382.0 * 4]))) == 0.5  # the threshold in the scale's own units


def test_a_zero_valued_term_carries_the_gradient_only():
    t = torch.tensor([3.0, -2.0], requires_grad=True)
    z = zero_valued(t * 5)
    assert torch.equal(z.detach(), torch.zeros(2))
    (grad,) = torch.autograd.grad(z.sum(), t)
    assert torch.equal(grad, torch.full((2,), 5.0))


@pytest.mark.parametrize("calls_per_stage", [1, 2])
def test_the_skip_stand_in_follows_the_stage_and_leaves_coded_cubes_alone(calls_per_stage):
    state = TileState()
    state.soft = [torch.full((1, 1, 2), 0.5, requires_grad=True) for _ in range(4)]
    state.cube = torch.tensor([[[True, False]]])  # the first element's cube is coded whole
    q = torch.tensor([[[3.0, -2.0]]], requires_grad=True)
    for stage in range(4):
        state.calls = (stage + 1) * calls_per_stage  # the stage's last call, which keeps the skip's residual
        extra = state.extra(q, calls_per_stage)
        assert torch.equal(extra.detach(), torch.zeros(1, 1, 2))
        grads = torch.autograd.grad(extra.sum(), state.soft, allow_unused=True)
        assert [g is not None for g in grads] == [k == stage for k in range(4)]
        assert torch.equal(grads[stage], torch.tensor([[[0.0, -2.0]]]))
