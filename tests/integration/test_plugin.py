"""End-to-end runs of the plugin through pytester: collection, selection, gates, xdist."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_project, write_suite, write_thresholds

from pytest_nicrobust.record import from_json  # the JSON keeps a case's headline once, in modes

FAST = [
    "--nicrobust-metrics",
    "psnr,mse,msssim",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:randomly",
    "--nicrobust-no-transfer",
]


@pytest.fixture
def project(pytester, tiny_pt):
    return tiny_project(pytester, tiny_pt)


def _ids(result):
    return sorted(line.strip() for line in result.outlines if "::" in line)


def test_collection_ids_and_markers(project):
    write_suite(
        project.path, attacks='[[attacks]]\nname = "pgd"\npresets = ["eps7", "eps5"]\n\n[[attacks]]\nname = "ifgsm"\n'
    )
    result = project.runpytest_subprocess("suites", "--collect-only", "-q", *FAST)
    assert _ids(result) == sorted(
        [
            f"suites/mini.suite.toml::tiny[q{q}-{a}-recon_error-skimage-photos-none]"
            for q in (1, 2)
            for a in ("pgd-eps7", "pgd-eps5", "ifgsm-eps7")
        ]
        + [f"suites/mini.suite.toml::tiny[q{q}-worst-case-skimage-photos-none]" for q in (1, 2)]
    )
    only_pgd = project.runpytest_subprocess("suites", "--collect-only", "-q", "-m", "attack_pgd and codec_tiny", *FAST)
    assert len(_ids(only_pgd)) == 4
    by_k = project.runpytest_subprocess("suites", "--collect-only", "-q", "-k", "ifgsm and q2", *FAST)
    assert _ids(by_k) == ["suites/mini.suite.toml::tiny[q2-ifgsm-eps7-recon_error-skimage-photos-none]"]


def test_every_id_can_be_selected_and_pasted_back(project):
    """-k takes any id whole, and the short summary prints ids pytest accepts as arguments."""
    write_suite(
        project.path, attacks='[[attacks]]\nname = "pgd"\nsteps = 1\nalpha = 0.01\nobjectives = ["bitrate:luma"]\n'
    )
    suite = project.path / "suites" / "mini.suite.toml"
    suite.write_text(suite.read_text().replace('name = "tiny"', 'name = "tiny.v2"'))  # a dot in a label
    ids = _ids(project.runpytest_subprocess("suites", "--collect-only", "-q", *FAST))
    assert "suites/mini.suite.toml::tiny.v2[q1-pgd-eps7+alpha:0.01+steps:1-bitrate:luma-skimage-photos-none]" in ids
    for nodeid in ids:
        name = nodeid.split("::")[1]
        assert _ids(project.runpytest_subprocess("suites", "--collect-only", "-q", "-k", name, *FAST)) == [nodeid]
    run = project.runpytest_subprocess("suites", "-rA", "-v", "-k", "q1 and not worst", *FAST)
    (line,) = [ln for ln in run.outlines if ln.startswith("PASSED ")]
    pasted = line.split()[1]
    assert pasted in ids and _ids(project.runpytest_subprocess(pasted, "--collect-only", "-q", *FAST)) == [pasted]
    assert any(ln.startswith(f"{pasted} PASSED") for ln in run.outlines), "the -v line shows the id as it is"


def test_objectives_are_a_dimension(project):
    write_suite(project.path, attacks='[[attacks]]\nname = "pgd"\nobjectives = ["recon_shift", "bitrate:luma"]\n')
    result = project.runpytest_subprocess("suites", "--collect-only", "-q", "-m", "not worst_case", *FAST)
    ids = _ids(result)
    assert "suites/mini.suite.toml::tiny[q1-pgd-eps7-bitrate:luma-skimage-photos-none]" in ids
    assert len(ids) == 4


def test_default_objectives_follow_the_gated_metrics(project):
    """No objectives in the suite: one test per objective aligned with a gated metric."""
    write_suite(project.path, attacks='[[attacks]]\nname = "pgd"\n\n[[attacks]]\nname = "noise"\n')
    write_thresholds(
        project.path,
        "[defaults]\ndelta_psnr = 9.0\ndelta_msssim = 1.0\nbitrate_increase = 2.0\n"
        '[overrides.noise]\nmatch = { codec = "tiny[q2]" }\ndelta_msssim = false\n',
    )
    ids = _ids(project.runpytest_subprocess("suites", "--collect-only", "-q", "-m", "not worst_case", *FAST))
    q1 = sorted(i.split("[", 1)[1] for i in ids if "[q1" in i)
    assert q1 == [
        "q1-noise-eps7-skimage-photos-none]",
        "q1-pgd-eps7-bitrate-skimage-photos-none]",
        "q1-pgd-eps7-msssim_error-skimage-photos-none]",
        "q1-pgd-eps7-recon_error-skimage-photos-none]",
    ]
    assert not any("msssim_error" in i for i in ids if "[q2" in i), "q2 does not gate MS-SSIM"


@pytest.mark.parametrize(
    "attacks, message",
    [
        ('[[attacks]]\nname = "pgd"\npresets = ["eps99"]\n', "attacks[0].presets: unknown preset 'eps99' for pgd"),
        ('[[attacks]]\nname = "pgd"\nobjectives = ["blur"]\n', "attacks[0].objectives: unknown objective 'blur'"),
        ('[[attacks]]\nname = "pgd"\nsteps = -3\n', "attacks[0].steps: must be a positive integer, got -3"),
        ('[[attacks]]\nname = "pgd"\neps = 1000\n', "attacks[0].eps: must be a budget in (0, 1]"),
        ('[[attacks]]\nname = "pgd"\neps = 0\n', "attacks[0].eps: must be a budget in (0, 1]"),
        ('[[attacks]]\nname = "pgd"\nalpha = 0\n', "attacks[0].alpha: must be a number > 0"),
        ('[[attacks]]\nname = "pgd"\nsteps = 2.5\n', "attacks[0].steps: must be a positive integer, got 2.5"),
        ('[[attacks]]\nname = "ftda"\ntau = 2.0\n', "attacks[0].tau: must be a budget in (0, 1]"),
        ('[[attacks]]\nname = "pgd"\npresets = []\n', "attacks[0].presets: must not be empty"),
        ('[[attacks]]\nname = "noise"\nobjectives = ["bitrate"]\n', "attacks[0].objectives: noise ignores the codec"),
        ('[[attacks]]\nname = "fgsm9"\n', "attacks[0].name: unknown attack 'fgsm9'"),
    ],
)
def test_bad_suite_is_reported_at_collection_with_file_and_key(project, attacks, message):
    write_suite(project.path, attacks=attacks)
    result = project.runpytest_subprocess("suites", "--collect-only", *FAST)
    assert result.ret != 0
    assert f"suites/mini.suite.toml: {message}" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_passing_gate_and_json(project, tmp_path):
    write_suite(project.path)
    out = tmp_path / "r.json"
    result = project.runpytest_subprocess("suites", "-k", "q1 and pgd", "--nicrobust-json", str(out), *FAST)
    result.assert_outcomes(passed=1)
    data = json.loads(out.read_text())
    (test,) = [from_json(t) for t in data["tests"]]
    assert test["params"]["attack"] == "pgd[eps7+steps:2]" and test["attack_params"]["steps"] == 2
    assert test["outcome"] == "passed"
    assert test["per_image"][0]["image"] == "astronaut"
    assert test["gates"][0]["metric"] == "delta_psnr" and test["gates"][0]["passed"]
    assert test["mean"]["psnr_inputs"] < 60  # the attack did change the image


def test_failing_gate_names_metric_value_limit_and_source(project, tmp_path):
    write_suite(project.path)
    write_thresholds(
        project.path,
        '[defaults]\ndelta_psnr = 100.0\n\n[overrides.strict]\nmatch = { codec = "tiny[q1]", attack = "pgd" }\n'
        "delta_psnr = 0.0\nbitrate_increase = 0.0\n",
    )
    out = tmp_path / "r.json"
    result = project.runpytest_subprocess("suites", "--nicrobust-json", str(out), "-m", "not worst_case", *FAST)
    result.assert_outcomes(passed=1, failed=2)  # q1 gates the bitrate too, so it also runs the bitrate objective
    result.stdout.fnmatch_lines(
        [
            # pytest's failure section names the test again (not "test session")
            "_* tiny[[]q1-pgd-eps7+steps:2-recon_error-skimage-photos-none] _*",
            "*tiny[[]q1-pgd-eps7+steps:2-recon_error-skimage-photos-none]: 1 gate(s) failed (mean over 1 image(s)):",
            "*delta_psnr: * dB > limit 0 dB, over by * dB  (thresholds.toml [[]overrides.strict])",
        ]
    )
    out_text = result.stdout.str()
    assert "_ test session _" not in out_text
    summary = out_text.split("nicrobust summary")[1].splitlines()[1:]
    # the verdict first and last: counts, and the worst gate with how far over and where
    first = summary[0]
    assert first.startswith("nicrobust verdict: FAILED: 2 failed, 1 passed, 0 without a limit; worst: ")
    assert " over by " in first and " in tiny[q1-pgd-eps7+steps:2-" in first
    assert first.endswith("2 test(s) whose attack had not converged")  # 2 steps: the verdict repeats it
    assert [line for line in summary if line.startswith("nicrobust verdict: ")][-1] == first
    # the table: failures first, then by headroom; units; "over by" for a failure, "margin" for a pass
    rows = [line for line in summary if line.split()[:1] in (["FAIL"], ["pass"])]
    assert [r.split()[0] for r in rows] == ["FAIL", "FAIL", "pass"]
    assert "over by" in rows[0] and " dB" in rows[-1] and "margin" in rows[-1]
    assert "limit(s) passed" not in out_text
    failed = [from_json(t) for t in json.loads(out.read_text())["tests"] if t["outcome"] == "failed"]
    assert failed and failed[0]["per_image"], "values of a failing test are kept"
    # --nicrobust-summary picks the table's length; a wrong choice is a usage error naming the option
    only = project.runpytest_subprocess("suites", "-m", "not worst_case", "--nicrobust-summary=failed", *FAST)
    assert [line.split()[0] for line in only.stdout.lines if line.split()[:1] in (["FAIL"], ["pass"])] == [
        "FAIL",
        "FAIL",
    ]
    bad = project.runpytest_subprocess("suites", "--nicrobust-summary=some", *FAST)
    assert bad.ret != 0 and "--nicrobust-summary: expected one of failed, worst, all" in bad.stderr.str()


def test_failure_headers_name_the_test_under_xdist(project):
    write_suite(project.path)
    write_thresholds(project.path, "[defaults]\ndelta_psnr = 0.0\n")
    result = project.runpytest_subprocess("suites", "-n", "2", "-k", "q1 and pgd", *FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["_* tiny[[]q1-pgd-eps7+steps:2-recon_error-skimage-photos-none] _*"])
    assert "_ test session _" not in result.stdout.str()


def test_the_shipped_limits_give_no_override_warning(project):
    """The repository's thresholds.toml links to the shipped limits: their random-init and transfer
    overrides cannot apply to every run, and say nothing when they do not."""
    import os

    from pytest_nicrobust.config.thresholds import DEFAULT_PATH

    write_suite(project.path, attacks='[[attacks]]\nname = "pgd"\nsteps = 1\nobjectives = ["recon_error"]\n')
    os.unlink(project.path / "thresholds.toml")
    os.symlink(DEFAULT_PATH, project.path / "thresholds.toml")
    result = project.runpytest_subprocess("suites", "-k", "q1 and pgd", *FAST)
    assert "matched no test" not in result.stdout.str()
    os.unlink(project.path / "thresholds.toml")  # a file of the user's own (never written through the link)
    write_thresholds(
        project.path,
        '[defaults]\ndelta_psnr = 100.0\n[overrides.mine]\nmatch = { codec = "other*" }\ndelta_psnr = 1.0\n',
    )
    result = project.runpytest_subprocess("suites", "-k", "q1 and pgd", *FAST)
    result.stdout.fnmatch_lines(["warning: thresholds.toml [[]overrides.mine] matched no test in this run"])


def _pgd_with_threads(threads: int):
    import torch

    from pytest_nicrobust.attacks import build_attack
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, to_tensor
    from pytest_nicrobust.metrics.deltas import evaluate

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        codec = load_codec("bmshj2018-hyperprior", "nicrobust", 3)
        x = to_tensor(load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), 1, 128))
        x_adv = build_attack("pgd", codec, "eps7", "recon_error", 0, "noise", {"steps": 2})(x)
        return evaluate(x, x_adv, codec.roundtrip(x), codec.roundtrip(x_adv), ("psnr",))
    finally:
        torch.set_num_threads(before)


def test_xdist_gives_bit_identical_numbers(project, tmp_path, monkeypatch):
    """-n 0, -n 2 and two images at a time agree to the last bit, on a codec and crop where the torch
    thread count changes the numbers (checked first: one thread against two)."""
    assert _pgd_with_threads(1) != _pgd_with_threads(2), "not sensitive to the thread count"
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)  # the inner runs must not look like xdist workers
    write_suite(project.path, crop=128, images=2, attacks='[[attacks]]\nname = "pgd"\nsteps = 2\n')
    suite = project.path / "suites" / "mini.suite.toml"
    suite.write_text(
        suite.read_text().replace(
            'name = "tiny"\nweights = "tiny.pt"\nqualities = [1, 2]', 'weights = "nicrobust"\nqualities = [3]'
        )
    )
    runs = {}
    for label, args in (
        ("n0", ["-n", "0", "--nicrobust-threads", "1"]),
        ("n2", ["-n", "2"]),
        ("two-at-a-time", ["-n", "0", "--nicrobust-threads", "2"]),
    ):
        out = tmp_path / f"{label}.json"
        project.runpytest_subprocess("suites", *args, f"--nicrobust-json={out}", *FAST).assert_outcomes(passed=2)
        runs[label] = {
            t["name"]: (t.get("seed"), from_json(t)["per_image"]) for t in json.loads(out.read_text())["tests"]
        }
    assert runs["n0"] == runs["n2"] == runs["two-at-a-time"]


def test_missing_data_root_is_a_clear_error(project):
    write_suite(project.path)
    suite = project.path / "suites" / "mini.suite.toml"
    suite.write_text(suite.read_text().replace('name = "skimage-photos"', 'name = "kodak"'))
    result = project.runpytest_subprocess(
        "suites", "-k", "q1 and pgd", *FAST, "--nicrobust-data", str(project.path / "nowhere")
    )
    result.assert_outcomes(errors=1)  # one error at collection, not one failure per test
    result.stdout.fnmatch_lines(["suites/mini.suite.toml: dataset 'kodak': folder */nowhere/kodak does not exist*"])
    assert result.stdout.str().count("does not exist") == 1
    unset = project.runpytest_subprocess("suites", *FAST, "--nicrobust-data=")
    unset.assert_outcomes(errors=1)
    unset.stdout.fnmatch_lines(
        ["suites/mini.suite.toml: dataset 'kodak' needs the data root: pass --nicrobust-data DIR*"]
    )
