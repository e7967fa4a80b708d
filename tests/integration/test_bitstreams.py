"""Bitstream tests end to end (docs/bitstreams.md): codecs whose decoders hang on a truncated stream,
crash the process on a corrupted header or return a wrongly sized image (tests/bitstream_codecs.py)
are each found within the default examples, their minimal streams saved beside the results JSON and
replayable, and the run goes on to the other codecs; the records match the shipped JSON Schema."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest

from pytest_nicrobust.outputs.schema import problems

TOYS = ("good", "hang", "segfault", "abort", "size", "plain")
SUITE = "".join(
    f'[[codecs]]\nmodel = "bitstream_codecs:make_codec"\nname = "toy-{f}"\nflavour = "{f}"\n\n' for f in TOYS
)
SUITE += textwrap.dedent("""
    [[attacks]]
    name = "noise"

    [[datasets]]
    name = "skimage-photos"

    [bitstreams]
    time_limit = 2   # the default examples (200); a shorter limit and budget keep the hang's cost low in CI
    budget = 20
    classical = ["webp"]
""")


def _pytest(project: Path, *args, select="bitstream", timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    cmd = [sys.executable, "-m", "pytest", "toys.suite.toml", "-p", "no:cacheprovider", "-k", select, *args]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = tmp_path_factory.mktemp("toys")
    shutil.copy(Path(__file__).resolve().parents[1] / "bitstream_codecs.py", path)
    (path / "toys.suite.toml").write_text("images = 2\ncrop = 64\ntransfer = false\nworst_case = false\n\n" + SUITE)
    proc = _pytest(path, "-n", "2", "-rs", "--nicrobust-json=r.json", "--nicrobust-cache=cache")
    return path, proc, json.loads((path / "r.json").read_text())


def by_codec(doc) -> dict:
    return {t["params"]["codec"]: t for t in doc["tests"]}


def test_each_broken_decoder_is_found_and_the_others_pass(project):
    path, proc, doc = project
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    tests = by_codec(doc)
    assert {c: t["outcome"] for c, t in tests.items()} == {
        "toy-good": "passed",
        "webp": "passed",
        "toy-hang": "failed",
        "toy-segfault": "failed",
        "toy-abort": "failed",
        "toy-size": "failed",
        "toy-plain": "skipped",
    }
    found = {c: {f["property"] for f in t["failures"]} for c, t in tests.items()}
    assert found["toy-hang"] == {"hang"} and found["toy-segfault"] == found["toy-abort"] == {"crash"}
    assert found["toy-size"] == {"bad output"} and found["toy-good"] == found["webp"] == set()
    assert all(t["streams_tried"] >= 2 for c, t in tests.items() if c != "toy-plain")
    assert tests["toy-good"]["streams_tried"] >= 200  # the default examples, all decoded: no finding cut it short


def test_the_findings_are_minimal_and_say_what_broke(project):
    tests = by_codec(project[2])
    crash = tests["toy-segfault"]["failures"][0]
    assert crash["size"] == 0 and crash["error"].startswith("killed by SIGSEGV: Fatal Python error: Segmentation fault")
    assert tests["toy-abort"]["failures"][0]["error"].startswith("killed by SIGABRT")
    hang = tests["toy-hang"]["failures"][0]
    assert hang["size"] < 203 and "truncated" in hang["recipe"] and hang["error"] == "no answer within 2 s"
    size = tests["toy-size"]["failures"][0]
    assert "more than max_pixels (65536)" in size["error"]


def test_a_codec_without_the_stream_api_is_reported_not_silently_skipped(project):
    path, proc, doc = project
    plain = by_codec(doc)["toy-plain"]
    assert plain["bitstream"]["stream_api"] is False
    assert "no stream API: PlainCodec implements no _encode_padded and _decode_padded" in proc.stdout
    assert "no stream API (not tested): toy-plain" in proc.stdout
    assert doc["summary"]["counts"]["untested_decoders"] == 1


def test_each_finding_is_a_file_beside_the_json_and_its_replay_command_reproduces_it(project):
    path, proc, doc = project
    for codec in ("toy-hang", "toy-segfault", "toy-size"):
        finding = by_codec(doc)[codec]["failures"][0]
        stream = path / finding["stream"]
        assert stream.parent.name == "r-bitstreams"
        assert hashlib.sha256(stream.read_bytes()).hexdigest() == finding["sha256"]
        command = finding["replay"].split()
        assert command[:4] == ["python", "-m", "pytest_nicrobust", "replay"]
        replay = subprocess.run(
            [sys.executable, *command[1:3], command[3], command[4].strip("'"), *command[5:]],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 1, replay.stdout + replay.stderr
        assert replay.stdout.splitlines()[-1] == f"verdict: {finding['property']}"
    assert "bitstreams: 7 decoder(s)" in proc.stdout and "r-bitstreams/toy-segfault" in proc.stdout


def test_the_records_match_the_shipped_schema(project):
    doc = project[2]
    schema = json.loads((resources.files("pytest_nicrobust") / "results.schema.json").read_text())
    assert problems(doc, schema) == []
    bad = json.loads(json.dumps(doc))
    bad["tests"][0]["failures"] = [{"property": "slow"}]
    assert problems(bad, schema)


def test_the_next_run_finds_the_same_minimal_streams_from_the_example_database(project):
    path, _, doc = project
    again = _pytest(
        path, "--nicrobust-json=again.json", "--nicrobust-cache=cache", select="bitstream and (segfault or size)"
    )
    assert again.returncode == 1, again.stdout[-2000:]
    first, second = by_codec(doc), by_codec(json.loads((path / "again.json").read_text()))
    for codec in ("toy-segfault", "toy-size"):
        assert [f["sha256"] for f in second[codec]["failures"]] == [f["sha256"] for f in first[codec]["failures"]]


def test_the_cross_device_check_is_skipped_with_its_reason_without_a_gpu(project):
    path, proc, doc = project
    tests = by_codec(doc)
    if doc["provenance"]["devices"] != ["cpu"]:
        pytest.skip("this run had a CUDA device: the check ran (docs/bitstreams.md)")
    assert tests["toy-good"]["cross_device"] == {
        "status": "skipped",
        "reason": "no CUDA device (the run's device is cpu): the check encodes on a GPU and decodes on the CPU",
    }
    assert tests["webp"]["cross_device"] == {"status": "skipped", "reason": "Pillow codes on the CPU only"}
    assert "cross-device check skipped: no CUDA device" in proc.stdout
