"""``merge`` re-gates from the values and the thresholds file it hashes; it never trusts an outcome.

Non-numeric or non-finite values and wrongly typed shards are one line and exit 2, and nothing is
written until every input is valid."""

from __future__ import annotations

import copy
import json

import pytest

from pytest_nicrobust.cli.merge import main
from pytest_nicrobust.files import sha256_of

PARAMS = {
    "codec": "tiny",
    "bitrate": "q1",
    "attack": "pgd[eps7]",
    "objective": "recon_error",
    "dataset": "skimage-photos",
    "defense": "none",
}


def _test(k: int, delta: float) -> dict:
    gate = {
        "metric": "delta_psnr",
        "value": delta,
        "limit": 2.0,
        "source": "thresholds.toml [defaults]",
        "passed": delta <= 2.0,
        "mode": "undefended",
        "kind": "limit",
        "baseline": None,
        "current": None,
    }
    return {
        "id": f"suites/s.toml::t{k}",
        "name": f"t{k}",
        "kind": "case",
        "suite": "/x/s.toml",
        "params": dict(PARAMS, codec=f"tiny{k}"),
        "headline_mode": "undefended",
        "modes": {"undefended": {"per_image": [{"image": "a", "delta_psnr": delta}], "mean": {"delta_psnr": delta}}},
        "gates": [gate],
        "gated": True,
        "outcome": "passed" if delta <= 2.0 else "failed",
    }


def _shard(k: int, thresholds, delta=1.0) -> dict:
    prov = {
        "timestamp": "2026-12-01T00:00:00Z",
        "finished": "2026-12-01T00:01:00Z",
        "duration_s": 60.0,
        "plugin": {"version": "0.1.0", "commit": None},
        "command": ["pytest"],
        "cwd": "/x",
        "thresholds": {"path": str(thresholds), "sha256": sha256_of(thresholds), "plugin_default": False},
        "seed": 0,
        "metrics": ["psnr"],
        "python": "3.11",
        "platform": "Linux",
        "packages": {},
        "shard": f"{k}/2",
        "suites": {"/x/s.toml": "0" * 64},
        "devices": ["cpu"],
        "workers": 1,
        "worker_ids": [],
    }
    return {
        "format": 3,
        "complete": True,
        "provenance": prov,
        "tests": [_test(k, delta)],
        "collected": [f"suites/s.toml::t{k}"],
    }


@pytest.fixture
def shards(tmp_path):
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text("[defaults]\ndelta_psnr = 2.0\n")
    docs = [_shard(1, thresholds), _shard(2, thresholds)]

    def write(*edited):
        paths = []
        for k, doc in enumerate(edited or docs, 1):
            path = tmp_path / f"shard{k}.json"
            path.write_text(json.dumps(doc))
            paths.append(str(path))
        return paths

    return docs, write, tmp_path


def test_honest_shards_merge_and_pass(shards, capsys):
    docs, write, tmp = shards
    assert main([*write(), "-o", str(tmp / "m.json")]) == 0
    assert json.loads((tmp / "m.json").read_text())["complete"] is True
    assert "re-gated" not in capsys.readouterr().err


def test_an_edited_value_is_re_gated_not_trusted(shards, capsys):
    docs, write, tmp = shards
    forged = copy.deepcopy(docs[1])
    forged["tests"][0]["modes"]["undefended"]["mean"]["delta_psnr"] = 1e300  # outcome and gate still say passed
    assert main([*write(docs[0], forged), "-o", str(tmp / "m.json")]) == 1
    err = capsys.readouterr().err
    assert "t2: re-gated from its values: gates recomputed; recorded passed, its values say failed" in err
    merged = {t["name"]: t for t in json.loads((tmp / "m.json").read_text())["tests"]}
    assert merged["t2"]["outcome"] == "failed" and merged["t2"]["gates"][0]["value"] == 1e300


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("tests", 0, "modes", "undefended", "mean", "delta_psnr"), "abc", "mean.delta_psnr: expected a finite number"),
        (
            ("tests", 0, "modes", "undefended", "mean", "delta_psnr"),
            float("inf"),
            "expected a finite number, got Infinity",
        ),
        (("tests", 0, "gates", 0, "value"), float("nan"), "gates[0].value: expected a finite number"),
        (("tests",), {"a": 1}, "tests: expected a list of test records"),
        (("tests", 0, "params"), "x", "params: expected a table of labels"),
        (("provenance", "shard"), "a/b", "provenance.shard: expected 'K/N'"),
        (("tests", 0, "outcome"), "great", "outcome: expected passed or failed"),
    ],
)
def test_a_bad_value_or_type_is_one_line_rc_2_and_nothing_written(shards, capsys, path, value, message):
    docs, write, tmp = shards
    bad = _set(copy.deepcopy(docs[1]), path, value)
    assert main([*write(docs[0], bad), "-o", str(tmp / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("merge: ") and "shard2.json" in err[0] and message in err[0], err
    assert not (tmp / "m.json").exists() and not list(tmp.glob("m-*"))


def test_a_test_without_an_id_is_refused(shards, capsys):
    docs, write, tmp = shards
    bad = copy.deepcopy(docs[1])
    del bad["tests"][0]["id"]
    assert main([*write(docs[0], bad), "-o", str(tmp / "m.json")]) == 2
    assert "tests[0].id: expected the test's id" in capsys.readouterr().err and not (tmp / "m.json").exists()


def test_thresholds_that_changed_since_the_shards_ran_are_refused(shards, capsys):
    docs, write, tmp = shards
    paths = write()
    (tmp / "thresholds.toml").write_text("[defaults]\ndelta_psnr = 200.0\n")
    assert main([*paths, "-o", str(tmp / "m.json")]) == 2
    assert "the shards were gated with" in capsys.readouterr().err and not (tmp / "m.json").exists()


def _without_values_or_error(doc):
    test = doc["tests"][0]
    for key in ("modes", "gates", "headline_mode"):
        test.pop(key)
    test["outcome"] = "failed"
    return doc


def _kind(doc):
    doc["tests"][0]["kind"] = "benchmark"
    return doc


def _format_2(doc):
    doc["format"] = 2
    return doc


def _huge_key(doc):
    doc["junk"] = "x" * 20_000_000
    return doc


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            _without_values_or_error,
            "$.tests[0]: a failed test names why: an error, the images that failed, a failed gate or a decoder's finding",
        ),
        (_kind, "$.tests[0].kind: 'benchmark' is not one of case, curve, worst-case, transfer, crashed, bitstream"),
        (_format_2, "format: 2, this merge joins shards of format 3"),
        (_huge_key, "$: unknown key 'junk'"),
    ],
)
def test_what_the_schema_refuses_merge_refuses(shards, capsys, edit, message):
    docs, write, tmp = shards
    assert main([*write(docs[0], edit(copy.deepcopy(docs[1]))), "-o", str(tmp / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("merge: ") and "shard2.json" in err[0] and message in err[0], err
    assert len(err[0]) < 400 and not (tmp / "m.json").exists()


def test_a_shard_nested_too_deep_is_one_line_not_a_traceback(shards, capsys):
    docs, write, tmp = shards
    paths = write()
    (tmp / "shard2.json").write_text("[" * 200_000)
    assert main([*paths, "-o", str(tmp / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"merge: {paths[1]}: not a results JSON (nested deeper than JSON can be read)"]


def test_a_shard_with_its_failing_test_deleted_is_named(shards, capsys):
    docs, write, tmp = shards
    failing = _shard(2, tmp / "thresholds.toml", delta=3.0)
    assert main([*write(docs[0], failing), "-o", str(tmp / "m.json")]) == 1  # whole: the failure counts
    lost = copy.deepcopy(failing)
    lost["tests"] = []  # the failing test's record deleted: the rest would merge to PASSED
    assert main([*write(docs[0], lost), "-o", str(tmp / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "shard2.json: 1 test(s) it collected have no record: suites/s.toml::t2; the shard lost "
        "them: run that shard again"
    ), err


def test_a_shard_that_ran_no_test_merges_with_a_warning(shards, capsys):
    """A suite with one model split in two: shard 1/2 ran no test and named no suite (it was 'their
    suites differ')."""
    docs, write, tmp = shards
    empty = copy.deepcopy(docs[0])
    empty.update(tests=[], collected=[])
    empty["provenance"]["suites"] = {}
    paths = write(empty, docs[1])
    assert main([*paths, "-o", str(tmp / "m.json")]) == 0
    assert f"merge: warning: {paths[0]} (shard 1/2) ran no test: the suite has fewer model groups than shards" in (
        capsys.readouterr().err
    )
    merged = json.loads((tmp / "m.json").read_text())
    assert merged["provenance"]["suites"] == {"/x/s.toml": "0" * 64} and [t["name"] for t in merged["tests"]] == ["t2"]
