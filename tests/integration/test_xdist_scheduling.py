"""Under xdist no test waits on another worker's x', and a record's timings say what happened."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from helpers import write_suite, write_thresholds

FAST = ["--nicrobust-metrics", "psnr,mse", "-p", "no:randomly", "-p", "no:cacheprovider"]
ATTACKS = (
    '[[attacks]]\nname = "pgd"\nsteps = 3\n\n[[attacks]]\nname = "ifgsm"\nsteps = 2\n\n[[attacks]]\nname = "noise"\n'
)
KEY = re.compile(
    r"^(load|sanity|(attack|cache_hit|cache_wait|coding|metrics):(undefended|non-adaptive|adaptive|transfer))$"
)


@pytest.fixture
def project(pytester, tiny_pt):
    (pytester.path / "suites").mkdir()
    shutil.copy(tiny_pt, pytester.path / "suites" / "tiny.pt")
    write_suite(pytester.path, attacks=ATTACKS, images=2, extra='defenses = ["none", "roll"]\ntransfer = true')
    write_thresholds(
        pytester.path, "[defaults]\ndelta_psnr = 100.0\nbitrate_increase = 100.0\ntransfer_delta_psnr = 100.0\n"
    )
    return pytester


def test_two_workers_never_wait_and_timings_say_what_happened(project, tmp_path):
    out, cache = tmp_path / "r.json", tmp_path / "cache"
    result = project.runpytest_subprocess(
        "suites", "-n", "2", f"--nicrobust-json={out}", f"--nicrobust-cache={cache}", *FAST
    )
    assert result.ret in (0, 1), result.stdout.str()[-3000:]
    tests = {t["name"]: t for t in json.loads(out.read_text())["tests"]}
    assert {t["worker"] for t in tests.values()} == {"gw0", "gw1"}
    for t in tests.values():
        assert t["started"] <= t["stopped"], t["name"]
        assert t["timings"] and all(KEY.match(k) for k in t["timings"]), t["timings"]
        assert not any(k.startswith("cache_wait:") for k in t["timings"]), (t["name"], t["timings"])
    for w in (t for t in tests.values() if t["kind"] == "worst-case"):
        for m in (tests[name] for name in w["members"]):  # done before, or queued before it on its worker
            assert m["stopped"] <= w["started"] + 1e-3, (w["name"], m["name"])
    for t in tests.values():
        if t["kind"] == "transfer":  # x' of its source: made (or read) before it, never waited for
            assert any(k.split(":")[0] in ("cache_hit", "attack") for k in t["timings"]), t["timings"]
    # a case made its x' with the attack; the defended non-adaptive mode reuses it (no step of its own)
    case = next(t for t in tests.values() if t["kind"] == "case" and t["params"]["defense"] == "roll")
    assert {"attack:undefended", "attack:adaptive", "coding:non-adaptive"} <= set(
        case["timings"]
    ) or "cache_hit:undefended" in case["timings"]
    assert not any(k.endswith(":non-adaptive") and k.startswith(("attack", "cache")) for k in case["timings"])


def test_a_second_run_reads_every_x_from_the_cache(project, tmp_path):
    cache = tmp_path / "cache"
    for name in ("first.json", "again.json"):
        result = project.runpytest_subprocess(
            "suites",
            "-k",
            "q1 and not transfer",
            f"--nicrobust-json={tmp_path / name}",
            f"--nicrobust-cache={cache}",
            *FAST,
        )
        assert result.ret in (0, 1), result.stdout.str()[-3000:]
    first = {t["name"]: t for t in json.loads((tmp_path / "first.json").read_text())["tests"]}
    again = {t["name"]: t for t in json.loads((tmp_path / "again.json").read_text())["tests"]}
    for name, t in again.items():
        assert not any(k.startswith("attack:") for k in t["timings"]), (name, t["timings"])
        if t["kind"] == "case":
            assert "cache_hit:undefended" in t["timings"], t["timings"]
            assert t["modes"] == first[name]["modes"], name
