"""Unit and property tests for pytest_nicrobust.metrics (fast, CPU)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import pytorch_msssim
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pytest_nicrobust import metrics as M

FAST = settings(max_examples=25, deadline=None)


def _scene(n: int = 1, h: int = 96, w: int = 128, seed: int = 0) -> torch.Tensor:
    """Smooth gradients + sinusoids + mild texture, values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    imgs = []
    for i in range(n):
        phase = torch.rand(3, generator=g) * 6.28
        chans = [
            0.5 + 0.3 * torch.sin(6.0 * xx + 4.0 * yy * (c + 1) + phase[c] + i) * (0.5 + 0.5 * yy) for c in range(3)
        ]
        img = torch.stack(chans) + 0.05 * torch.rand(3, h, w, generator=g)
        imgs.append(img)
    return torch.stack(imgs).clamp(0, 1)


def _noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


# --------------------------------------------------------------------------- #
# identical images, output contract
# --------------------------------------------------------------------------- #
def test_identical_images():
    x = _scene(2)
    assert torch.equal(M.mse(x, x), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(M.psnr(x, x), torch.full((2,), M.PSNR_MAX_DB, dtype=torch.float64))
    assert torch.allclose(M.ms_ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-5)
    v = M.vmaf(x, x)
    assert torch.allclose(v, torch.full((2,), M.VMAF_IDENTICAL, dtype=torch.float64), atol=1e-3)
    assert (v >= 95).all()


def test_identical_flat_images_vmaf():
    x = torch.full((1, 3, 64, 64), 0.4)
    assert M.vmaf(x, x).item() == pytest.approx(M.VMAF_IDENTICAL, abs=1e-3)


@pytest.mark.parametrize("name", sorted(M.FULL_REFERENCE))
def test_output_contract(name):
    a, b = _scene(3), _noisy(_scene(3), 0.05)
    out = M.FULL_REFERENCE[name](a, b)
    assert out.shape == (3,) and out.dtype == torch.float64 and out.device == a.device
    assert torch.isfinite(out).all()


def test_registry_and_direction_sets():
    assert set(M.FULL_REFERENCE) == set(M.HIGHER_IS_BETTER) | {"mse"}
    assert {"psnr", "msssim", "vmaf"} == M.HIGHER_IS_BETTER


# --------------------------------------------------------------------------- #
# monotonicity and batch independence
# --------------------------------------------------------------------------- #
def test_more_noise_is_worse():
    x = _scene(1)
    levels = [0.01, 0.03, 0.1, 0.25]
    ys = [_noisy(x, s, seed=7) for s in levels]  # same noise pattern, scaled
    for name in ("psnr", "msssim", "vmaf"):
        scores = [M.FULL_REFERENCE[name](x, y).item() for y in ys]
        assert all(s1 > s2 for s1, s2 in zip(scores, scores[1:])), (name, scores)
    errs = [M.mse(x, y).item() for y in ys]
    assert all(e1 < e2 for e1, e2 in zip(errs, errs[1:])), errs


@pytest.mark.parametrize("name", sorted(M.FULL_REFERENCE))
def test_batch_equals_single_images(name):
    f = M.FULL_REFERENCE[name]
    a = torch.cat([_scene(1, seed=1), _scene(1, seed=2)])
    b = torch.cat([_noisy(a[:1], 0.02), _noisy(a[1:], 0.1, seed=3)])
    batched = f(a, b)
    singles = torch.cat([f(a[:1], b[:1]), f(a[1:], b[1:])])
    assert torch.allclose(batched, singles, rtol=0, atol=1e-6), (batched, singles)
    assert batched[0] != batched[1]


# --------------------------------------------------------------------------- #
# mse / psnr properties
# --------------------------------------------------------------------------- #
_img = st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda s: st.tuples(
        arrays(np.float32, (s[0], 3, s[1], s[2]), elements=st.floats(0, 1, width=32)),
        arrays(np.float32, (s[0], 3, s[1], s[2]), elements=st.floats(0, 1, width=32)),
    )
)


@FAST
@given(_img)
def test_mse_psnr_match_numpy(pair):
    a_np, b_np = pair
    a, b = torch.from_numpy(a_np), torch.from_numpy(b_np)
    expected = ((a_np.astype(np.float64) - b_np.astype(np.float64)) ** 2).reshape(len(a_np), -1).mean(1)
    got = M.mse(a, b)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-15)
    assert torch.equal(got, M.mse(b, a))
    p = M.psnr(a, b).numpy()
    assert (p <= M.PSNR_MAX_DB).all() and (p >= 0).all()
    with np.errstate(divide="ignore"):
        ref = np.minimum(10 * np.log10(1.0 / expected), M.PSNR_MAX_DB)
    np.testing.assert_allclose(p, ref, rtol=1e-9)


def test_psnr_known_value_and_data_range():
    a = torch.zeros(1, 3, 4, 4)
    b = torch.full((1, 3, 4, 4), 0.1)
    assert M.psnr(a, b).item() == pytest.approx(20.0)
    assert M.psnr(a, b, data_range=2.0).item() == pytest.approx(20.0 + 20 * math.log10(2))
    assert M.psnr(a, a, data_range=2.0).item() == pytest.approx(M.PSNR_MAX_DB)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="data_range"):
            M.psnr(a, b, data_range=bad)


# --------------------------------------------------------------------------- #
# MS-SSIM window selection
# --------------------------------------------------------------------------- #
def test_ms_ssim_window_table():
    table = {33: 3, 64: 3, 65: 5, 96: 5, 97: 7, 128: 7, 129: 9, 160: 9, 161: 11, 768: 11}
    for side, win in table.items():
        assert M.ms_ssim_window_size(side, side + 5) == win
        assert M.ms_ssim_window_size(side + 5, side) == win
    for side in range(33, 400):
        win = M.ms_ssim_window_size(side, side)
        assert side > (win - 1) * 16  # pytorch-msssim's assertion holds
        assert win == 11 or not side > (win + 1) * 16  # and it is the largest such window
    assert M.MS_SSIM_MIN_SIDE == 33


@pytest.mark.parametrize("side", [33, 64, 65, 129, 161])
def test_ms_ssim_boundary_sizes_run_and_larger_window_fails(side):
    a = _scene(1, side, side + 3)
    b = _noisy(a, 0.05)
    val = M.ms_ssim(a, b)
    assert 0 < val.item() < 1
    win = M.ms_ssim_window_size(side, side + 3)
    if win < 11:
        with pytest.raises(AssertionError):
            pytorch_msssim.ms_ssim(a, b, data_range=1.0, size_average=False, win_size=win + 2)


@pytest.mark.parametrize("shape", [(32, 32), (32, 200), (200, 20)])
def test_ms_ssim_too_small(shape):
    a = torch.rand(1, 3, *shape)
    with pytest.raises(ValueError, match=rf"at least 33x33.*H={shape[0]}, W={shape[1]}"):
        M.ms_ssim(a, a)


# --------------------------------------------------------------------------- #
# input validation
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", sorted(M.FULL_REFERENCE))
def test_validation_errors(name):
    f = M.FULL_REFERENCE[name]
    good = torch.rand(2, 3, 64, 64)
    first, second = ("reference", "distorted") if name == "vmaf" else ("a", "b")
    with pytest.raises(ValueError, match=rf"{first} must have 4 dimensions.*\(3, 64, 64\)"):
        f(good[0], good[0])
    with pytest.raises(ValueError, match=rf"{second} must have 3 \(RGB\) channels.*\(2, 1, 64, 64\)"):
        f(good, good[:, :1])
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3, 64, 64\) and \(1, 3, 64, 64\)"):
        f(good, good[:1])
    with pytest.raises(ValueError, match=rf"{second} values must lie in \[0, 1\].*max 1.1"):
        f(good, good.clone().index_fill_(0, torch.tensor([1]), 1.1))
    neg = good.clone()
    neg[0, 1, 2, 3] = -0.1
    with pytest.raises(ValueError, match=rf"{first} values must lie in \[0, 1\].*min -0.1"):
        f(neg, good)
    nan = good.clone()
    nan[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=rf"{first} contains NaN"):
        f(nan, good)
    with pytest.raises(ValueError, match="floating point"):
        f((good * 255).to(torch.uint8), good)
    with pytest.raises(ValueError, match="empty"):
        f(good[:0], good[:0])
    with pytest.raises(TypeError):
        f(good.numpy(), good)
    # within the 1e-6 tolerance is accepted
    out = f(good.clamp(0, 1) * (1 + 5e-7), good.clamp(min=0) - 5e-7 * (good < 1e-3))
    assert torch.isfinite(out).all()


def test_vmaf_minimum_size():
    x = torch.rand(1, 3, 16, 64)
    with pytest.raises(ValueError, match=r"VMAF needs images of at least 17x17.*H=16, W=64"):
        M.vmaf(x, x)
    y = torch.rand(1, 3, 17, 17)
    assert torch.isfinite(M.vmaf(y, _noisy(y, 0.1))).all()


# --------------------------------------------------------------------------- #
# gradients
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name", ["mse", "psnr", "msssim"])
def test_differentiable(name):
    f = M.FULL_REFERENCE[name]
    x = _scene(2, 64, 64)
    y = _noisy(x, 0.05).requires_grad_(True)
    out = f(x, y)
    assert out.requires_grad
    (grad,) = torch.autograd.grad(out.sum(), y)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # also w.r.t. the first argument, and finite at identical images
    x2 = x.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(f(x2, x.clone()).sum(), x2)
    assert torch.isfinite(g2).all()


def test_mse_psnr_gradcheck():
    a = torch.rand(2, 3, 3, 4, dtype=torch.float64)
    b = (a * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: M.mse(a, t), (b,))
    assert torch.autograd.gradcheck(lambda t: M.psnr(a, t), (b,))


def test_vmaf_is_not_differentiable_and_leaves_no_graph():
    x = _scene(1, 64, 64)
    y = _noisy(x, 0.05).requires_grad_(True)
    out = M.vmaf(x, y)
    assert not out.requires_grad


# --------------------------------------------------------------------------- #
# luma
# --------------------------------------------------------------------------- #
def test_luma_primaries():
    cols = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float32)
    x = cols.view(1, 5, 3, 1).permute(0, 2, 1, 3)  # (1, 3, 5, 1)
    for exact in (True, False):
        y = M.rgb_to_luma(x, exact_ffmpeg=exact).flatten().tolist()
        assert y == [16, 235, 81, 145, 41]


@FAST
@given(arrays(np.uint8, (1, 3, 8, 8)))
def test_luma_ffmpeg_vs_formula_differ_only_at_half(rgb):
    x = torch.from_numpy(rgb).float() / 255
    exact = M.rgb_to_luma(x, exact_ffmpeg=True)
    plain = M.rgb_to_luma(x, exact_ffmpeg=False)
    r, g, b = rgb[0].astype(np.float64)
    frac = (16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255) % 1
    diff = (exact - plain)[0, 0].numpy()
    assert set(np.unique(diff)) <= {0.0, 1.0}
    assert ((frac[diff == 1] > 0.49) & (frac[diff == 1] < 0.5)).all()


# --------------------------------------------------------------------------- #
# bit rate
# --------------------------------------------------------------------------- #
def test_bpp_from_bytes():
    expected = torch.tensor([4.0, 8.0], dtype=torch.float64)
    assert torch.equal(M.bpp_from_bytes([100, 200], 10, 20), expected)
    assert torch.equal(M.bpp_from_bytes(torch.tensor([100, 200]), 10, 20), expected)
    assert M.bpp_from_bytes(25, 10, 20).tolist() == [1.0]
    with pytest.raises(ValueError, match="non-negative"):
        M.bpp_from_bytes([-1], 10, 20)
    with pytest.raises(ValueError, match="height"):
        M.bpp_from_bytes([1], 0, 20)


def test_bpp_estimate_hand_computed():
    # image 0: 4 values p=1/2 (4 bits) + 3 values p=1/4 (6 bits) = 10 bits
    # image 1: 4 values p=1/8 (12 bits) + 3 values p=1 (0 bits)  = 12 bits
    y = torch.tensor([[0.5] * 4, [0.125] * 4]).view(2, 1, 2, 2).requires_grad_(True)
    z = torch.tensor([[0.25] * 3, [1.0] * 3])
    h, w = 2, 4
    out = M.bpp_estimate([y, z], h, w)
    assert out.dtype == torch.float64
    assert torch.allclose(out, torch.tensor([10 / 8, 12 / 8], dtype=torch.float64))
    assert torch.equal(M.bpp_estimate({"y": y, "z": z}, h, w), out)  # CompressAI dict
    assert torch.equal(M.bpp_estimate(iter([y, z]), h, w), out)
    (grad,) = torch.autograd.grad(out.sum(), y)
    expected = -1.0 / (y.detach() * math.log(2)) / (h * w)
    assert torch.allclose(grad, expected)


def test_bpp_estimate_errors():
    with pytest.raises(ValueError, match="empty"):
        M.bpp_estimate([], 2, 2)
    with pytest.raises(ValueError, match="batch size 3, expected 2"):
        M.bpp_estimate([torch.full((2, 4), 0.5), torch.full((3, 4), 0.5)], 2, 2)
    with pytest.raises(ValueError, match="positive"):
        M.bpp_estimate([torch.zeros(1, 4)], 2, 2)


# --------------------------------------------------------------------------- #
# deltas
# --------------------------------------------------------------------------- #
def test_delta_sign_conventions():
    assert M.delta("psnr", 30.0, 25.0) == 5.0  # PSNR dropped -> positive
    assert M.delta("vmaf", 90.0, 95.0) == -5.0  # attack improved quality -> negative
    assert M.delta("MS-SSIM", 0.99, 0.9) == pytest.approx(0.09)
    assert M.delta("mse", 0.01, 0.03) == pytest.approx(0.02)  # MSE grew -> positive
    assert M.amplification("psnr", 40.0, 30.0) == 10.0  # m(x,x') > m(C(x),C(x')) -> amplified
    assert M.amplification("mse", 0.001, 0.01) == pytest.approx(0.009)
    assert M.amplification("ms_ssim", 0.99, 0.995) == pytest.approx(-0.005)
    t = M.delta("psnr", torch.tensor([30.0, 20.0]), torch.tensor([25.0, 22.0]))
    assert t.tolist() == [5.0, -2.0]
    with pytest.raises(ValueError, match="unknown metric 'ssim'"):
        M.delta("ssim", 1.0, 0.5)
    with pytest.raises(ValueError, match="unknown metric"):
        M.amplification("lpips", 1.0, 0.5)


def test_delta_positive_for_every_metric_when_attack_hurts():
    # codec stand-in: reconstruction of the adversarial input is much worse
    x = _scene(1)
    rec_clean = _noisy(x, 0.02, seed=11)
    rec_adv = _noisy(x, 0.15, seed=12)
    for name, f in M.FULL_REFERENCE.items():
        d = M.delta(name, f(x, rec_clean), f(x, rec_adv))
        assert (d > 0).all(), name
        # amplification: small input perturbation, large reconstruction change
        x_adv = _noisy(x, 0.01, seed=13)
        a = M.amplification(name, f(x, x_adv), f(rec_clean, rec_adv))
        assert (a > 0).all(), name


def test_bitrate_increase():
    assert M.bitrate_increase(0.5, 0.75) == pytest.approx(0.5)
    assert M.bitrate_increase(1.0, 0.5) == pytest.approx(-0.5)
    t = M.bitrate_increase(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 1.0]))
    assert t.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="bpp_clean must be positive"):
        M.bitrate_increase(0.0, 1.0)
    with pytest.raises(ValueError, match="bpp_clean must be positive"):
        M.bitrate_increase(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))


# --------------------------------------------------------------------------- #
# imports
# --------------------------------------------------------------------------- #
def test_vmaf_torch_is_imported_lazily():
    code = (
        "import sys\n"
        "import pytest_nicrobust.metrics\n"
        "heavy = [m for m in ('vmaf_torch', 'pandas', 'compressai', 'yuvio') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_gate_name_unit_and_floor_comes_from_one_metric_row():
    """A metric's row is the one place its unit lives: the gate message, the test page's columns and
    the transfer matrices print the same unit; each row gives its delta, amplification and transfer gates."""
    from pytest_nicrobust.metrics.registry import GATES, ROWS, unit
    from pytest_nicrobust.outputs.transfer_matrix import axis_title
    from pytest_nicrobust.verdict.gates import GateResult

    for m in ROWS:
        for gate in (f"delta_{m.name}", f"amp_{m.name}", f"transfer_delta_{m.name}"):
            assert GATES[gate].metric == m.name and GATES[gate].unit == m.unit and GATES[gate].floor == m.floor
        assert unit(f"{m.name}_clean") == unit(f"delta_{m.name}") == m.unit
    vmaf = GateResult("delta_vmaf", 21.0, 20.0, "t", False)
    assert vmaf.numbers().startswith("21 points > limit 20 points")
    assert axis_title("delta_vmaf") == "delta_vmaf (points)" and axis_title("bitrate_increase") == "bitrate_increase"
