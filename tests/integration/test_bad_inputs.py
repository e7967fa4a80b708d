"""The plugin under bad input and faults: it never hangs, never loses a result, never runs someone
else's code, and says what is wrong with which file, key or image. One case per class of fault."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from helpers import write_suite, write_thresholds

from pytest_nicrobust.record import from_json  # the JSON keeps a case's headline once, in modes

FAST = ["--nicrobust-metrics", "psnr,mse,msssim", "-p", "no:randomly", "--nicrobust-no-transfer"]

# A codec wrapping the tiny CompressAI one, broken on demand (see the suite's options).
BAD_CODEC = """
import time
import torch
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.codecs.base import Codec


class Broken(Codec):
    def __init__(self, inner, mode, above):
        super().__init__(inner.info, inner.device)
        self.inner, self.mode, self.above = inner, mode, above

    def _forward_padded(self, x, proxy, generator):
        return self.inner._forward_padded(x, proxy, generator)

    def _roundtrip_padded(self, x):
        x_hat, nbytes = self.inner._roundtrip_padded(x)
        if self.mode == "nan":  # NaN for the images brighter than `above`
            bad = (x.flatten(1).mean(1) > self.above).view(-1, 1, 1, 1)
            x_hat = torch.where(bad, torch.full_like(x_hat, float("nan")), x_hat)
        elif self.mode == "sleep":
            time.sleep(3600)
        elif self.mode == "native":  # CompressAI's rANS coder fed NaN, unguarded: C++ that never returns
            from compressai.entropy_models import EntropyBottleneck

            coder = EntropyBottleneck(4)
            coder.update(force=True)
            coder.compress(torch.full((1, 4, 2, 2), float("nan")))
        return x_hat, nbytes


def make(name, quality, weights, device, mode="ok", above=2.0):
    return Broken(load_codec("bmshj2018-factorized", weights, 1, device, name), mode, above)
"""


def _codecs(*entries):
    return "\n".join(
        f'[[codecs]]\nmodel = "badcodec:make"\nname = "{name}"\nweights = "tiny.pt"\n{extra}\n'
        for name, extra in entries
    )


def _suite(root, codecs, images=1, attacks='[[attacks]]\nname = "pgd"\nsteps = 1\n'):
    (root / "suites" / "bad.suite.toml").write_text(
        f"images = {images}\ncrop = 64\nworst_case = false\n\n{codecs}\n"
        f'{attacks}\n[[datasets]]\nname = "skimage-photos"\n'
    )


@pytest.fixture
def project(pytester, tiny_pt):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    (pytester.path / "badcodec.py").write_text(BAD_CODEC)
    write_thresholds(pytester.path)
    return pytester


def _results(path):
    return {t["name"]: from_json(t) for t in json.loads(path.read_text())["tests"]}


# -- non-finite values, hangs ---------------------------------------------------------------


def test_nan_weights_are_a_codec_error_at_once_and_the_run_goes_on(project, tmp_path):
    sd = torch.load(project.path / "suites" / "tiny.pt", weights_only=True)
    sd = {
        k: v.clone().fill_(float("nan")) if k.startswith("g_a.0") and v.is_floating_point() else v
        for k, v in sd.items()
    }
    torch.save(sd, project.path / "suites" / "nan.pt")
    write_suite(
        project.path,
        attacks='[[attacks]]\nname = "pgd"\nsteps = 1\n',
        extra='worst_case = false\n\n[[codecs]]\nmodel = "bmshj2018-factorized"\nname = "nan"\n'
        'weights = "nan.pt"\nqualities = [1]',
    )
    out = tmp_path / "r.json"
    start = time.time()
    result = project.runpytest_subprocess("suites", f"--nicrobust-json={out}", *FAST, timeout=120)
    assert time.time() - start < 60
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*codec error: codec nan: the weights (*nan.pt) hold NaN or infinite values in *g_a.0*"]
    )
    assert len(_results(out)) == 3


def test_non_finite_latent_never_reaches_the_entropy_coder():
    """A NaN latent sends CompressAI's rANS coder into an endless loop; the guard raises first."""
    code = textwrap.dedent("""
        import torch
        from pytest_nicrobust.codecs import load_codec
        from pytest_nicrobust.codecs.base import NonFiniteError
        codec = load_codec("bmshj2018-factorized", "random", 1)
        x = torch.rand(2, 3, 64, 64)
        x[1, :, 5, 5] = float("nan")
        codec.model.g_a = torch.nn.Identity()  # let the NaN through to the latent
        try:
            codec._roundtrip_padded(x)
        except NonFiniteError as exc:
            print("raised:", exc, exc.images)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "raised: codec bmshj2018-factorized: the latent is NaN or infinite for image(s) [1]" in proc.stdout, (
        proc.stderr
    )


def test_one_bad_image_keeps_the_others_and_is_named(project, tmp_path):
    _suite(project.path, _codecs(("halfbad", 'mode = "nan"\nabove = 0.45')), images=3)
    out = tmp_path / "r.json"
    result = project.runpytest_subprocess("suites", f"--nicrobust-json={out}", *FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*1 image(s) failed, 2 measured (kept in the results):",
            "*coffee: codec error: codec halfbad: the clean image: the decoded image is NaN or infinite",
        ]
    )
    (test,) = _results(out).values()
    assert [r["image"] for r in test["per_image"]] == ["astronaut", "chelsea"]
    assert test["errors"][0]["images"] == ["coffee"]


@pytest.mark.parametrize("mode, dist", [("sleep", "load"), ("native", "load"), ("native", "loadgroup")])
def test_a_hanging_test_is_ended_and_the_run_goes_on(project, tmp_path, mode, dist):
    """Python code is interrupted at the limit; native code that never returns ends its worker."""
    _suite(project.path, _codecs(("hangs", f'mode = "{mode}"'), ("fine", "")))
    out = tmp_path / "r.json"
    start = time.time()
    result = project.runpytest_subprocess(
        "suites", "-n", "2", "--dist", dist, "--nicrobust-timeout=20", f"--nicrobust-json={out}", *FAST, timeout=180
    )
    assert time.time() - start < 120
    if mode == "sleep":
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*time limit: *::hangs*ran past its time limit of 20 s (--nicrobust-timeout)*"])
    elif dist == "load":  # the watchdog ended the worker; the controller names the test and the limit
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*nicrobust: TimeLimitExceeded: *hangs* ran past its time limit of 20 s*"])
    else:  # loadgroup hands the crashed test's group to the next worker: the test is refused there
        result.assert_outcomes(passed=1, failed=2)
        result.stdout.fnmatch_lines(
            [
                "*nicrobust: TimeLimitExceeded: *hangs* ran past its time limit of 20 s*",
                "*hangs* ended its worker earlier in this run*",
            ]
        )
    results = _results(out)
    assert {t["outcome"] for t in results.values()} == {"passed", "failed"} and len(results) == 2


# -- nothing from the user's folders runs ------------------------------------------------------


def test_a_git_repository_around_a_checkpoint_runs_nothing(project, tmp_path):
    if not shutil.which("git"):
        pytest.skip("needs git to build the booby-trapped repository")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    shutil.copy(project.path / "suites" / "tiny.pt", ckpt / "tiny.pt")
    marker = tmp_path / "fsmonitor-ran"
    hook = ckpt / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null"}
    for args in (
        ["init", "-q"],
        ["config", "core.fsmonitor", str(hook)],
        ["add", "tiny.pt"],
        ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", "-C", str(ckpt), *args], check=True, env=env)
    marker.unlink(missing_ok=True)  # git itself ran the hook while committing
    write_suite(project.path, checkpoint=str(ckpt / "tiny.pt"))
    project.runpytest_subprocess("suites", "--alluredir", str(tmp_path / "allure"), *FAST).assert_outcomes(passed=4)
    assert not marker.exists(), "a command from the checkpoint's repository ran"
    assert (tmp_path / "allure" / "environment.properties").exists()


# -- nothing measured is lost -----------------------------------------------------------------


def test_without_matplotlib_the_json_is_complete_and_extras_warn(project, tmp_path, monkeypatch):
    blocker = tmp_path / "block"
    (blocker / "matplotlib").mkdir(parents=True)
    (blocker / "matplotlib" / "__init__.py").write_text("raise ImportError('matplotlib blocked by the test')\n")
    write_suite(project.path)
    out = tmp_path / "r.json"
    monkeypatch.setenv("PYTHONPATH", str(blocker) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = project.runpytest_subprocess(
        "suites", f"--nicrobust-json={out}", "--nicrobust-metrics", "psnr,mse,msssim", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=4, skipped=8)
    result.stdout.fnmatch_lines(["warning: transfer heatmaps not written: ImportError: matplotlib blocked by the test"])
    doc = json.loads(out.read_text())
    assert doc["complete"] and len(doc["tests"]) == 12 and doc["transfer"]
    assert (tmp_path / "r-transfer" / "transfer.json").exists()


def test_labels_that_matplotlib_would_parse_are_drawn_as_written(project, tmp_path):
    write_suite(project.path)
    suite = project.path / "suites" / "mini.suite.toml"
    suite.write_text(suite.read_text().replace('name = "tiny"', 'name = "tiny$\\\\frac$"'))
    out = tmp_path / "r.json"
    result = project.runpytest_subprocess("suites", f"--nicrobust-json={out}", "--nicrobust-metrics", "psnr,mse,msssim")
    assert "not written" not in result.stdout.str()
    assert list((tmp_path / "r-transfer").glob("*.png"))


def test_a_json_path_in_a_missing_folder_is_refused_before_the_run(project, tmp_path):
    write_suite(project.path)
    result = project.runpytest_subprocess("suites", f"--nicrobust-json={tmp_path}/no/such/r.json", *FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "folder" in result.stderr.str() and "does not exist" in result.stderr.str()
    assert "passed" not in result.stdout.str()


# -- the x' cache is not trusted blindly ----------------------------------------------------------


def test_changed_codec_code_changes_the_cache_key(tmp_path, monkeypatch):
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.config.suite import AttackEntry
    from pytest_nicrobust.datasets import Image
    from pytest_nicrobust.run.advcache import cache_key

    (tmp_path / "mycodec.py").write_text(BAD_CODEC)
    monkeypatch.delitem(sys.modules, "mycodec", raising=False)
    roots = (str(tmp_path),)  # the suite's folder
    checkpoint = tmp_path / "tiny.pt"
    from helpers import tiny_checkpoint

    tiny_checkpoint(checkpoint)
    image, attack = Image("a", np.zeros((8, 8, 3), np.uint8)), AttackEntry("pgd", "eps7", "recon_error")
    before = cache_key(load_codec("mycodec:make", str(checkpoint), 1, search=roots), attack, 0, image, ["a"])
    (tmp_path / "mycodec.py").write_text(BAD_CODEC.replace("time.sleep(3600)", "time.sleep(1)"))
    after = load_codec("mycodec:make", str(checkpoint), 1, search=roots)
    assert cache_key(after, attack, 0, image, ["a"]) != before


def test_a_replaced_or_unreadable_cache_entry_is_made_again(project, tmp_path):
    write_suite(project.path)
    cache = tmp_path / "cache"
    first = tmp_path / "first.json"
    project.runpytest_subprocess(
        "suites", "-k", "q1", f"--nicrobust-cache={cache}", f"--nicrobust-json={first}", *FAST
    ).assert_outcomes(passed=2)
    (entry,) = cache.rglob("*.png")
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(entry)  # another image under the same key
    again = tmp_path / "again.json"
    result = project.runpytest_subprocess(
        "suites", "-k", "q1", f"--nicrobust-cache={cache}", f"--nicrobust-json={again}", *FAST
    )
    result.stdout.fnmatch_lines(["*cached adversarial image * changes a pixel by * > L∞ budget 7.00/255; made again*"])
    assert _results(again) == {
        k: {**v, "timings": _results(again)[k]["timings"]} for k, v in _results(first).items()
    } or all(_results(again)[k]["mean"] == v["mean"] for k, v in _results(first).items())
    entry.write_bytes(b"not a png")
    result = project.runpytest_subprocess("suites", "-k", "q1", f"--nicrobust-cache={cache}", *FAST)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*cached adversarial image * cannot be read*; made again*"])
    from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset

    (clean,) = load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), 1, 64)
    Image.fromarray(clean.pixels).save(entry)  # a cache restored from elsewhere: x' replaced by x (ΔPSNR 0, PASS)
    restored = tmp_path / "restored.json"
    result = project.runpytest_subprocess(
        "suites", "-k", "q1", f"--nicrobust-cache={cache}", f"--nicrobust-json={restored}", *FAST
    )
    result.stdout.fnmatch_lines(
        ["*cached adversarial image * is the clean image itself, not an attacked one; made again*"]
    )
    assert all(_results(restored)[k]["mean"] == v["mean"] for k, v in _results(first).items())


def test_without_the_pytest_cache_the_cache_folder_is_private(project, tmp_path, monkeypatch):
    write_suite(project.path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    project.runpytest_subprocess("suites", "-k", "q1 and pgd", "-p", "no:cacheprovider", *FAST).assert_outcomes(
        passed=1
    )
    (folder,) = (tmp_path / "xdg" / "pytest-nicrobust").iterdir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and list(folder.rglob("*.png"))


# -- configuration mistakes: once, before any test, naming file and key ------------------------------


@pytest.mark.parametrize(
    "thresholds, args, message",
    [
        (
            "[defaults]\ndelta_psnr = 'high'\n",
            [],
            "thresholds.toml: defaults.delta_psnr: expected a finite number or false",
        ),
        ("[defaults]\ndelta_vmaf = 10.0\n", [], "[defaults]: delta_vmaf gates vmaf, which this run does not compute"),
        (
            "[overrides.a]\nmatch = { mode = 'adaptve' }\ndelta_psnr = 1\n",
            [],
            "overrides.a.match.mode: 'adaptve' matches no mode; modes are undefended, non-adaptive, adaptive, transfer",
        ),
        (
            "[defaults]\ndelta_psnr = 1.0\n",
            ["--nicrobust-metrics", "psnr,foo"],
            "--nicrobust-metrics: unknown metric 'foo'",
        ),
    ],
)
def test_config_mistakes_are_reported_once_before_any_test(project, thresholds, args, message):
    write_suite(project.path)
    write_thresholds(project.path, thresholds)
    fast = ["--nicrobust-metrics", "psnr,mse,msssim", *args, "-p", "no:randomly"]
    result = project.runpytest_subprocess("suites", *fast)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert message in err and err.count("ERROR") == 1 and "Traceback" not in err + result.stdout.str()


def test_an_image_too_small_for_the_metrics_is_named(project, tmp_path):
    from PIL import Image

    folder = project.path / "tiny-images"
    folder.mkdir()
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "dot.png")
    write_suite(project.path)
    suite = project.path / "suites" / "mini.suite.toml"
    suite.write_text(
        suite.read_text()
        .replace("crop = 64", "")
        .replace('name = "skimage-photos"', 'name = "mine"\npath = "../tiny-images"')
    )
    result = project.runpytest_subprocess("suites", "-k", "q1 and pgd", *FAST)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*data error: image */tiny-images/dot.png is 1x1: too small for msssim, which needs at least 33x33*"]
    )


def test_without_thresholds_toml_the_plugin_defaults_apply_and_say_so(project):
    write_suite(project.path)
    (project.path / "thresholds.toml").unlink()
    result = project.runpytest_subprocess("suites", "-k", "q1", "-p", "no:randomly", "--nicrobust-no-transfer")
    outcomes = result.parseoutcomes()  # a random tiny codec may pass or fail the default limits
    # they gate ΔPSNR, ΔMS-SSIM and the bitrate: 3 aligned objectives, and the worst case
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 4 and "skipped" not in outcomes
    result.stdout.fnmatch_lines(
        ["no thresholds.toml in the rootdir: the plugin's default limits applied (*default_thresholds.toml); seed 0"]
    )
    assert not any(line.startswith("nicrobust: thresholds") for line in result.outlines)  # no header line any more
