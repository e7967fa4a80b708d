"""The README's five-line own-codec suite, random weights, on two xdist workers: every worker builds
the same net (the plugin seeds the factory from the run seed and the codec's label), so the worst
case equals or exceeds each of its members (unseeded, the workers built different nets and the worst
case came out below a member, with no warning)."""

from __future__ import annotations

import json

from helpers import write_thresholds

from pytest_nicrobust.metrics.registry import GATES
from pytest_nicrobust.record import from_json

FACTORY = """
from compressai.zoo.image import model_architectures

from pytest_nicrobust.codecs.base import CodecInfo
from pytest_nicrobust.codecs.builtin.compressai_models import CompressAICodec


def make_codec(*, name, quality, weights, device):
    net = model_architectures["bmshj2018-factorized"](N=8, M=8)  # random weights, no seed of its own
    return CompressAICodec(net, CodecInfo(name, "bmshj2018-factorized", quality, weights, random_init=True), device)
"""
SUITE = """
attacks = [{ name = "pgd", steps = 2 }, { name = "noise" }, { name = "noise", presets = ["eps5"] }, { name = "ifgsm", steps = 2 }]
datasets = [{ name = "skimage-photos", images = 2, crop = 64 }]
transfer = false
[[codecs]]
model = "ourcodec.nicrobust:make_codec"
name = "ourcodec-v1"
"""


def test_every_worker_builds_the_same_random_net(pytester, tmp_path):
    (pytester.path / "ourcodec").mkdir()
    (pytester.path / "ourcodec" / "__init__.py").write_text("")
    (pytester.path / "ourcodec" / "nicrobust.py").write_text(FACTORY)
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "mine.suite.toml").write_text(SUITE)
    write_thresholds(pytester.path, "[defaults]\ndelta_psnr = 100.0\n")
    out = tmp_path / "r.json"
    result = pytester.runpytest_subprocess(
        "suites", "-n", "2", "-p", "no:randomly", "--nicrobust-metrics", "psnr,mse", f"--nicrobust-json={out}"
    )
    assert "nicrobust: error:" not in result.stdout.str(), result.stdout.str()[-3000:]
    assert result.ret == 0
    result.assert_outcomes(passed=5)
    tests = {t["name"]: from_json(t) for t in json.loads(out.read_text())["tests"]}
    (worst,) = [t for t in tests.values() if t["kind"] == "worst-case"]
    assert len({t["worker"] for t in tests.values()}) == 2, "the tests ran on both workers"
    for member in worst["members"]:
        for metric, value in tests[member]["mean"].items():
            if metric in GATES:
                assert worst["mean"][metric] >= value, (metric, worst["mean"][metric], member, value)
