"""The gradient-masking checks on rows: each names the codec and the numbers; an honest pattern
(white-box well above noise, transfers and the query attack below the own attacks) gives none."""

from __future__ import annotations

from pytest_nicrobust.verdict.masking import Source, checks, unbounded_check

LINF7 = ("linf", 7 / 255)


def rows(*values, metric="delta_psnr"):
    return [{"image": f"im{i}", metric: v} for i, v in enumerate(values)]


def source(label, role, origin="own", values=(3.0, 3.2), objective="recon_error", budget=LINF7):
    metric = {"recon_error": "delta_psnr", "bitrate": "bitrate_increase"}[objective]
    return Source(
        label, label.split("[")[0].split(" ")[0], objective, budget, role, origin, rows(*values, metric=metric)
    )


def honest():
    return [
        source("pgd[eps7]:recon_error", "white-box"),
        source("apgd[eps7]:recon_error", "white-box", values=(3.3, 3.4)),
        source("noise[eps7]", "noise", values=(0.9, 1.0)),
        source("square[eps7]:recon_error", "query", values=(1.4, 1.5)),
        source("pgd[eps7]:recon_error from other[q3]", "white-box", "transfer", values=(2.9, 3.1)),
        source(
            "cadv[default]:recon_error from other[q3]",
            "white-box",
            "transfer",
            values=(3.5, 3.6),
            budget=("chroma", 0.1),
        ),  # no own attack of that budget: not judged
    ]


def test_an_honest_pattern_raises_nothing():
    assert checks("honest[q3]", honest()) == []
    assert unbounded_check("honest[q3]", [{"image": "a", "psnr_attacked": 6.4, "psnr_noise_image": 11.1}]) == []


def test_a_white_box_attack_below_the_noise_baseline_is_named_with_its_numbers():
    found = checks(
        "masked[q3]",
        [
            source("pgd[eps7]:recon_error", "white-box", values=(0.8, 0.9)),
            source("noise[eps7]", "noise", values=(0.95, 1.0)),
        ],
    )
    assert [s["check"] for s in found] == ["below noise"]
    line = found[0]["line"]
    assert line.startswith(
        "gradient masking suspected on masked[q3]: below noise: pgd[eps7]:recon_error reaches "
        "delta_psnr 0.85 dB, less than noise[eps7] 0.975 dB"
    )
    assert [i["image"] for i in found[0]["images"]] == ["im0", "im1"]


def test_a_transfer_or_the_query_attack_beating_the_own_gradient_is_named():
    sources = [
        source("pgd[eps7]:recon_error", "white-box", values=(0.9, 1.0)),
        source("square[eps7]:recon_error", "query", values=(1.5, 1.6)),
        source("pgd[eps7]:recon_error from honest[q3]", "white-box", "transfer", values=(3.0, 3.2)),
    ]
    found = {s["check"]: s for s in checks("masked[q3]", sources)}
    assert set(found) == {"beaten by a query attack", "beaten by a transfer"}
    assert found["beaten by a transfer"]["value"] == 3.1 and found["beaten by a transfer"]["reference"] == 0.95


def test_a_transfer_within_the_margin_is_not_a_suspicion():
    """CAdv's x' hardly depends on the codec: its transfer reaches 1.05x the own attack on the shipped codecs."""
    sources = [
        source("cadv[default]:recon_error", "white-box", values=(3.4, 3.4), budget=("chroma", 0.1)),
        source(
            "cadv[default]:recon_error from b[q3]", "white-box", "transfer", values=(3.6, 3.6), budget=("chroma", 0.1)
        ),
    ]
    assert checks("a[q3]", sources) == []


def test_an_unbounded_attack_that_does_not_wreck_the_reconstruction_is_named():
    found = unbounded_check(
        "masked[q3]",
        [
            {"image": "a", "psnr_attacked": 27.0, "psnr_noise_image": 11.1},
            {"image": "b", "psnr_attacked": 6.0, "psnr_noise_image": 11.0},
        ],
    )
    assert len(found) == 1 and found[0]["check"] == "unbounded attack fails"
    assert [i["image"] for i in found[0]["images"]] == ["a"] and "masked[q3]" in found[0]["line"]
