"""Attacks: budgets, seeding and strength of every attack, against a plain PGD loop for the L∞ ones.

Property tests run on a tiny random codec (fast); strength tests on a tiny codec trained in a
session fixture on scikit-image photos (a few hundred steps, ~10 s), because a random-init
codec has no structure to attack and its noise-proxy objective is all noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_nicrobust.attacks import ATTACKS, OBJECTIVES, build_attack
from pytest_nicrobust.attacks.cadv import CAdv, gamut_map
from pytest_nicrobust.attacks.colorizer import EdgeAwarePropagation, ZhangColorizer, ZhangNet, lab_to_rgb, rgb_to_lab
from pytest_nicrobust.attacks.constraints import fit_rmse, rms
from pytest_nicrobust.attacks.haar import haar_dwt, haar_idwt
from pytest_nicrobust.attacks.noise import GaussianNoise
from pytest_nicrobust.attacks.objectives import evaluate_objective
from pytest_nicrobust.attacks.presets import check_parameter
from pytest_nicrobust.codecs.base import CodecInfo, round_to_8bit
from pytest_nicrobust.codecs.builtin.compressai_models import CompressAICodec
from pytest_nicrobust.metrics.colors import rgb_to_ycbcr

NEW = ("ftda", "madc", "madc-linf", "ssah", "cadv", "noise")
FAST_STEPS = {"ftda": 3, "madc": 3, "madc-linf": 3, "ssah": 3, "cadv": 3}
LUMA_TOL = 1e-5  # float32 arithmetic of the YCbCr round trip
LUMA_TOL_8BIT = 0.5 / 255 + 1e-6  # rounding each RGB channel by ≤ 0.5/255 moves Y (weights sum to 1) by ≤ 0.5/255


def _codec(net, label):
    return CompressAICodec(net, CodecInfo(label, "bmshj2018-factorized", None, label), "cpu")


@pytest.fixture(scope="module")
def random_codec():
    from compressai.zoo.image import model_architectures

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = model_architectures["bmshj2018-factorized"](N=8, M=8)
    return _codec(net, "tiny-random")


def _photos():
    import skimage.data as data

    return [
        torch.from_numpy(np.ascontiguousarray(f())).permute(2, 0, 1).float() / 255
        for f in (data.astronaut, data.chelsea, data.coffee, data.rocket)
    ]


@pytest.fixture(scope="session")
def trained_codec():
    """bmshj2018-factorized N=M=16 trained 300 steps on 64² crops of skimage photos (seeded)."""
    from compressai.zoo.image import model_architectures

    photos = _photos()
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = model_architectures["bmshj2018-factorized"](N=16, M=16)
        main = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
        aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
        opt, aux_opt = torch.optim.Adam(main, lr=3e-3), torch.optim.Adam(aux, lr=1e-2)
        net.train()
        for _ in range(300):
            crops = []
            for _ in range(8):
                im = photos[int(torch.randint(len(photos), (1,), generator=g))]
                i = int(torch.randint(im.shape[1] - 64, (1,), generator=g))
                j = int(torch.randint(im.shape[2] - 64, (1,), generator=g))
                crops.append(im[:, i : i + 64, j : j + 64])
            x = torch.stack(crops)
            out = net(x)
            bpp = sum((-torch.log2(lk)).sum() for lk in out["likelihoods"].values()) / (x.numel() / 3)
            loss = 0.02 * 255**2 * (out["x_hat"] - x).pow(2).mean() + bpp
            opt.zero_grad()
            loss.backward()
            opt.step()
            aux_opt.zero_grad()
            net.aux_loss().backward()
            aux_opt.step()
    return _codec(net.eval(), "tiny-trained")


@pytest.fixture(scope="session")
def photo_batch():
    im = _photos()[0]
    x = torch.stack([torch.nn.functional.avg_pool2d(im[None], 8)[0, :, :64, :64], im[:, 300:364, 300:364]])
    return round_to_8bit(x)


def _image(seed, n, h, w, kind):
    g = torch.Generator().manual_seed(seed)
    if kind == "zeros":
        x = torch.zeros(n, 3, h, w)
    elif kind == "ones":
        x = torch.ones(n, 3, h, w)
    elif kind == "smooth":
        x = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(h, w), mode="bilinear")
    else:
        x = torch.rand(n, 3, h, w, generator=g)
    return round_to_8bit(x)


def _fast(name, codec, seed=0, objective="recon_shift", **extra):
    preset = next(iter(ATTACKS[name]["presets"]))
    overrides = {"steps": FAST_STEPS[name]} if name in FAST_STEPS else {}
    overrides.update(extra)
    return build_attack(name, codec, preset, objective, seed, "noise", overrides)


def _check_budget(name, attack, x, x_adv):
    d = (x_adv - x).double()
    if name in ("noise", "madc-linf", "ssah"):
        assert d.abs().max() <= attack.eps + 1e-6
    elif name == "ftda":
        assert (d.pow(2).flatten(1).mean(1) <= attack.tau).all()
        # x on the 8-bit grid: the attack's output is already 8-bit, so the runner's rounding keeps the budget
        rounded = (round_to_8bit(x_adv) - x).double()
        assert (rounded.pow(2).flatten(1).mean(1) <= attack.tau).all()
    elif name == "madc":
        assert (rms(d) <= attack.eps).all()
        assert (rms(round_to_8bit(x_adv) - x) <= attack.eps).all()
    elif name == "cadv":
        dy = (rgb_to_ycbcr(x_adv.double()) - rgb_to_ycbcr(x.double()))[:, 0].abs().max()
        assert dy <= LUMA_TOL
        dy8 = (rgb_to_ycbcr(round_to_8bit(x_adv).double()) - rgb_to_ycbcr(x.double()))[:, 0].abs().max()
        assert dy8 <= LUMA_TOL_8BIT
    else:  # pragma: no cover
        raise AssertionError(name)


# -- properties ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
@settings(deadline=None, max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 2),
    h=st.sampled_from([16, 24, 40]),
    w=st.sampled_from([16, 32, 36]),
    kind=st.sampled_from(["random", "smooth", "zeros", "ones"]),
    objective=st.sampled_from([f"{o}:{c}" for o in OBJECTIVES for c in ("rgb", "ycbcr", "luma")]),
)
def test_range_shape_dtype_budget_and_seeding(random_codec, name, seed, n, h, w, kind, objective):
    if objective.startswith("msssim") and min(h, w) < 33:
        objective = "recon_error:" + objective.split(":")[1]  # MS-SSIM needs a few scales
    x = _image(seed, n, h, w, kind)
    attack = _fast(name, random_codec, seed=seed % 1000, objective=objective)
    x_adv = attack(x)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.isfinite(x_adv).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    _check_budget(name, attack, x, x_adv)
    again = _fast(name, random_codec, seed=seed % 1000, objective=objective)(x)
    assert torch.equal(x_adv, again)


@pytest.mark.parametrize("name", NEW)
def test_different_seeds_give_different_images(random_codec, name):
    x = _image(1, 1, 32, 32, "smooth")
    a, b = _fast(name, random_codec, seed=1)(x), _fast(name, random_codec, seed=2)(x)
    assert not torch.equal(a, b)


def test_full_budget_presets_hold_on_8bit_photos(random_codec, photo_batch):
    for name, preset, params in (("ftda", "tau3e-4", {}), ("madc", "rmse5", {}), ("cadv", "wide", {})):
        attack = build_attack(name, random_codec, preset, "recon_shift", 0, "noise", {"steps": 4, **params})
        _check_budget(name, attack, photo_batch, attack(photo_batch))


def test_fit_rmse_keeps_the_budget_after_8bit_rounding():
    g = torch.Generator().manual_seed(0)
    x = round_to_8bit(torch.rand(3, 3, 20, 20, generator=g))
    for budget in (1e-3, math.sqrt(3e-4), math.sqrt(6e-4), 7 / 255):
        x_adv = x + torch.randn(x.shape, generator=g) * 0.1
        out = fit_rmse(x, x_adv, budget)
        assert torch.equal(out, round_to_8bit(out))
        assert (rms(out - x) <= budget).all()
        assert (rms(out - x) >= 0.8 * budget).all()  # the projection does not throw the budget away


def test_gamut_map_keeps_luma_and_range():
    g = torch.Generator().manual_seed(0)
    luma = torch.rand(2, 1, 8, 8, generator=g)
    chroma = torch.rand(2, 2, 8, 8, generator=g)
    rgb = gamut_map(luma, chroma)
    assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6
    assert (rgb_to_ycbcr(rgb)[:, :1] - luma).abs().max() <= LUMA_TOL


def test_haar_is_orthonormal_and_invertible():
    x = torch.rand(2, 3, 8, 10, dtype=torch.float64)
    bands = haar_dwt(x)
    assert torch.allclose(haar_idwt(*bands), x)
    assert torch.allclose(sum(b.pow(2).sum() for b in bands), x.pow(2).sum())
    assert bands[0].shape == (2, 3, 4, 5)


def test_edge_aware_propagation_spreads_hints_and_stops_at_edges():
    guide = torch.full((1, 3, 16, 16), 0.5)
    guide[..., :, 8:] = torch.tensor([0.9, 0.2, 0.8]).view(1, 3, 1, 1)  # a strong edge at column 8
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4, 2] = 1
    hints = torch.zeros(1, 2, 16, 16)
    hints[..., 4, 2] = 0.3
    out = EdgeAwarePropagation()(guide, mask, hints)
    assert torch.allclose(out[..., :, :8], torch.full_like(out[..., :, :8], 0.3), atol=1e-4)  # filled its region
    assert out[..., :, 9:].abs().max() < 0.05  # barely crossed the edge


def test_lab_round_trip():
    rgb = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    assert torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-5)


def test_cadv_reports_its_colorizer_and_loads_zhang_weights(random_codec, tmp_path):
    assert CAdv(random_codec).colorizer_name == "edge-aware-propagation"
    torch.manual_seed(0)
    path = tmp_path / "zhang.pt"
    torch.save(ZhangNet().state_dict(), path)
    attack = CAdv(random_codec, steps=1, colorizer_weights=str(path))
    assert attack.colorizer_name == "zhang2017" and isinstance(attack.colorizer, ZhangColorizer)
    assert all(
        torch.equal(a, b)
        for a, b in zip(attack.colorizer.net.state_dict().values(), torch.load(path, weights_only=True).values())
    )
    x = _image(0, 1, 20, 20, "smooth")  # not a multiple of 8: the adapter pads
    x_adv = attack(x)
    assert x_adv.shape == x.shape
    _check_budget("cadv", attack, x, x_adv)


def test_noise_ignores_the_objective(random_codec):
    x = _image(3, 1, 16, 16, "random")
    a = GaussianNoise(random_codec, objective="bitrate", seed=5)(x)
    b = GaussianNoise(random_codec, objective="msssim_shift:luma", seed=5)(x)
    assert torch.equal(a, b)


def test_constructors_reject_bad_budgets(random_codec):
    from pytest_nicrobust.attacks.ftda import FTDA
    from pytest_nicrobust.attacks.madc import MADC
    from pytest_nicrobust.attacks.ssah import SSAH

    for cls, kw in (
        (FTDA, {"tau": -1}),
        (MADC, {"eps": -1}),
        (SSAH, {"lr": 0}),
        (CAdv, {"chroma_eps": -0.1}),
        (GaussianNoise, {"sigma": -1}),
    ):
        with pytest.raises(ValueError):
            cls(random_codec, **kw)


# -- registry and suite validation ----------------------------------------------------------


def test_registry_entries_build_with_every_objective(random_codec):
    for name in NEW:
        spec = ATTACKS[name]
        assert spec["paper"]
        for preset, params in spec["presets"].items():
            assert all(check_parameter(k, v) is None for k, v in params.items()), (name, preset)
            for objective in OBJECTIVES[:1] + ("bitrate:luma",):
                attack = build_attack(name, random_codec, preset, objective, 0)
                assert attack.name == name


@pytest.mark.parametrize(
    "attack, message",
    [
        ('name = "ftda"\npresets = ["tau1"]', "attacks[0].presets: unknown preset 'tau1' for ftda"),
        ('name = "madc"\neps = -0.1', "attacks[0].eps: must be a budget in (0, 1]"),
        ('name = "cadv"\nchroma_eps = -1', "attacks[0].chroma_eps: must be a budget in (0, 1]"),
        ('name = "ssah"\nlambda_lf = -1', "attacks[0].lambda_lf: must be a number >= 0"),
        ('name = "noise"\nsteps = 3', "attacks[0].steps: unknown key; noise presets take eps, sigma"),
        ('name = "ssah"\nobjectives = ["recon_shift:lab"]', "attacks[0].objectives: unknown colour space 'lab'"),
    ],
)
def test_bad_attack_entries_fail_suite_parsing_with_file_and_key(tmp_path, attack, message):
    from helpers import write_suite

    from pytest_nicrobust.config.suite import SuiteError, parse_suite

    path = write_suite(tmp_path, checkpoint="random", attacks=f"[[attacks]]\n{attack}\n")
    with pytest.raises(SuiteError) as info:
        parse_suite(str(path), display="suites/mini.toml")
    assert str(info.value).splitlines()[0].startswith(f"suites/mini.toml: {message}")


# -- strength on a trained codec ------------------------------------------------------------


def _score(codec, x, x_adv, objective="recon_shift"):
    """Objective with real rounding (STE forward), the attacked image rounded to 8 bits."""
    with torch.no_grad():
        ref = codec.forward(x, proxy="ste").x_hat
        out = codec.forward(round_to_8bit(x_adv), proxy="ste")
        return evaluate_objective(objective, "rgb", x, round_to_8bit(x_adv), ref, out.x_hat, out.bpp)


def _baseline(name, attack, codec, x, seed):
    """Gaussian noise with the attack's budget."""
    if name in ("ftda", "madc"):
        budget = math.sqrt(attack.tau) if name == "ftda" else attack.eps
        noisy = GaussianNoise(codec, eps=1.0, sigma=budget, seed=seed)(x)
        return fit_rmse(x, noisy, budget)
    if name == "cadv":
        return CAdv(codec, steps=0, init_std=attack.chroma_eps, chroma_eps=attack.chroma_eps, seed=seed)(x)
    return GaussianNoise(codec, eps=attack.eps, seed=seed)(x)


STRENGTH = {"ftda": 30, "madc": 25, "madc-linf": 30, "ssah": 30, "cadv": 30}


@pytest.mark.parametrize("name", list(STRENGTH))
def test_attack_beats_gaussian_noise_of_the_same_budget(trained_codec, photo_batch, name):
    x = photo_batch
    attack = _fast(name, trained_codec, steps=STRENGTH[name])
    x_adv = attack(x)
    _check_budget(name, attack, x, x_adv)
    value = _score(trained_codec, x, x_adv)
    noise = torch.stack(
        [_score(trained_codec, x, _baseline(name, attack, trained_codec, x, s)) for s in range(3)]
    ).amax(0)
    assert (value > 3 * noise).all(), (value, noise)


@pytest.mark.parametrize("name", ["ftda", "madc", "ssah"])
def test_attack_raises_estimated_bitrate_more_than_noise(trained_codec, photo_batch, name):
    x = photo_batch
    attack = _fast(name, trained_codec, objective="bitrate", steps=STRENGTH[name])
    value = _score(trained_codec, x, attack(x), "bitrate")
    noise = _score(trained_codec, x, _baseline(name, attack, trained_codec, x, 0), "bitrate")
    clean = _score(trained_codec, x, x, "bitrate")
    assert (value > clean).all(), (value, clean)
    assert ((value - clean) > 1.5 * (noise - clean).clamp_min(0)).all(), (value, noise, clean)


@pytest.mark.parametrize("name", list(STRENGTH))
def test_more_steps_are_not_worse(trained_codec, photo_batch, name):
    x = photo_batch
    few = _score(trained_codec, x, _fast(name, trained_codec, steps=5)(x)).sum()
    many = _score(trained_codec, x, _fast(name, trained_codec, steps=20)(x)).sum()
    assert many >= 0.95 * few, (few, many)


# -- PGD and I-FGSM ----------------------------------------------------------------------


LINF = ("pgd", "ifgsm", "apgd", "square")
STEPS_OF = {"square": "queries"}  # the square attack counts queries, not steps


@pytest.mark.parametrize("name", LINF)
@settings(deadline=None, max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31 - 1),
    levels=st.sampled_from([1.0, 3.0, 5.5, 7.0, 7.65, 12.3]),
    kind=st.sampled_from(["random", "smooth", "zeros", "ones"]),
    objective=st.sampled_from(["recon_error", "recon_shift:luma", "bitrate", "amplify:ycbcr"]),
)
def test_linf_budget_is_exact_on_the_8bit_image(random_codec, name, seed, levels, kind, objective):
    """On an 8-bit x, x' is 8-bit and within eps, also for eps between levels (rounding would add one)."""
    x = _image(seed, 2, 24, 40, kind)
    eps = levels / 255
    few = {STEPS_OF.get(name, "steps"): 3}
    x_adv = build_attack(name, random_codec, "eps7", objective, seed % 1000, "noise", {"eps": eps, **few})(x)
    assert torch.equal(round_to_8bit(x_adv), x_adv), "x' is on the 8-bit grid"
    assert (x_adv - x).abs().max() <= math.floor(levels + 1e-6) / 255 + 1e-7
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", LINF)
def test_linf_attacks_are_seeded(random_codec, name):
    x = _image(3, 1, 32, 32, "smooth")
    few = {STEPS_OF.get(name, "steps"): 3}
    runs = [build_attack(name, random_codec, "eps7", "recon_error", s, "noise", few)(x) for s in (4, 4, 5)]
    assert torch.equal(runs[0], runs[1])
    if name != "ifgsm":
        assert not torch.equal(runs[0], runs[2]), "the seed draws the random start"


@pytest.mark.parametrize("name", LINF[:3])
def test_linf_attacks_beat_noise_of_the_same_budget(trained_codec, photo_batch, name):
    x = photo_batch
    clean = _score(trained_codec, x, x, "recon_error")
    value = _score(trained_codec, x, build_attack(name, trained_codec, "eps7", "recon_error", 0)(x), "recon_error")
    noise = torch.stack(
        [
            _score(trained_codec, x, GaussianNoise(trained_codec, eps=7 / 255, seed=s)(x), "recon_error")
            for s in range(3)
        ]
    ).amax(0)
    assert (value - clean > 1.5 * (noise - clean)).all(), (clean, value, noise)


def test_the_query_attack_beats_noise_without_a_gradient(trained_codec, photo_batch):
    """Square asks only the real round trip: it still finds more than noise of its budget."""
    x = photo_batch
    attack = build_attack("square", trained_codec, "eps7", "recon_error", 0, "noise", {"queries": 60})
    x_adv = attack(x)
    assert len(attack.trace) == 61  # the start and one query a step, each on the real codec

    def real(z):
        return (trained_codec.roundtrip(z).x_hat - z).pow(2).flatten(1).mean(1)

    noise = torch.stack([real(GaussianNoise(trained_codec, eps=7 / 255, seed=s)(x)) for s in range(3)]).amax(0)
    assert (real(x_adv) > noise).all(), (real(x_adv), noise, real(x))


def test_apgd_spends_as_many_gradients_as_pgd(random_codec):
    x = _image(5, 2, 32, 32, "smooth")
    counts = {}
    for name in ("pgd", "apgd"):
        attack = build_attack(name, random_codec, "eps7", "recon_error", 0)
        attack(x)
        counts[name] = attack.steps_done
    assert counts["apgd"] <= counts["pgd"] == 12, counts


def test_every_attack_with_steps_records_its_loss_curve(random_codec):
    """One objective value per image and step (Adam attacks score their last iterate too)."""
    x = _image(2, 2, 32, 32, "smooth")
    expected = {"ifgsm": 3, "pgd": 3, "apgd": 3, "ftda": 4, "madc": 4, "ssah": 4, "cadv": 4, "square": 4}
    for name, steps in expected.items():
        attack = _fast(name, random_codec, objective="recon_error", **{STEPS_OF.get(name, "steps"): 3})
        attack(x)
        traces = attack.image_traces()
        assert len(traces) == 2 and all(len(t) == steps for t in traces), (name, [len(t) for t in traces])
    noise = _fast("noise", random_codec)
    noise(x)
    assert noise.image_traces() == []
