"""``python -m pytest_nicrobust merge shard-*/results.json -o results.json [--alluredir merged]``.

Joins the JSON of the shards of one run (``--nicrobust-shard K/N``) and rebuilds what a whole run
writes: the summaries (verdict, gate matrix, score card), the transfer matrices and files, the
comparison with a baseline, and Allure's run files (environment, executor, categories, run summary)
into ``--alluredir``; give that folder to ``allure generate`` together with the shards' own
``allure-results``. Shards from different suites, thresholds, seeds or plugin versions, repeated or
missing shards, a shard that did not finish and one that lost tests (the ids it ``collected`` without
a record) are refused with a message naming the files.

The merge re-gates, it never trusts a shard's outcome: every test's gates are computed again from
its means and the thresholds file whose SHA-256 the shards recorded (read from the path they name,
or --thresholds FILE; a file whose hash differs is refused), regression gates are checked again
from their recorded change and allowance, and the outcome follows (a warning names each test whose
recorded outcome disagreed). A value that is not a finite number, a shard whose keys have the
wrong type (tests not a list, a test without an id, params not a table, shard not K/N, ...), and
anything the schema the package ships refuses (``results.schema.json``: an unknown key or kind, a
failed test that names no cause, another format, nesting deeper than JSON can be read) is refused
with one line naming the file and the key.

Exit status: 0 when the merged verdict passed, 1 when it failed, 2 on bad input (one line on
stderr; nothing is written until every input is valid).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

from ..files import OutputPathError, check_output, check_output_folder
from ..names import BITSTREAM
from ..outputs import github, terminal
from ..outputs.schema import first_problem
from ..outputs.summary import verdict_facts
from ..outputs.writer import FORMAT, Outputs, write_outputs
from ..record import from_json, means_of
from ..verdict.members import below_members

SAME = ("seed", "metrics")


class MergeError(Exception):
    pass


def _load(path: str) -> dict:
    """A shard, refused (one line naming the file and the key) when the schema the package ships
    refuses it, when it did not finish, or when a value the merge reads is not a finite number."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except RecursionError:
        raise MergeError(f"{path}: not a results JSON (nested deeper than JSON can be read)") from None
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: not a results JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(doc, dict) or "tests" not in doc or "provenance" not in doc:
        raise MergeError(f"{path}: not a --nicrobust-json file of this plugin (no tests or provenance)")
    if doc.get("format") != FORMAT:
        raise MergeError(
            f"{path}: format: {str(doc.get('format'))[:20]}, this merge joins shards of format {FORMAT} "
            "(docs/results-json.md): run that shard again with this plugin"
        )
    check_doc(path, doc)  # what the merge reads, in its words; then everything else the schema says
    problem = first_problem(doc)
    if problem:
        raise MergeError(f"{path}: {problem} (results.schema.json)")
    if not doc.get("complete"):
        raise MergeError(f'{path}: the run that wrote it did not finish ("complete": false); run that shard again')
    return doc


# -- the shape of a shard: every key the merge reads, with its type ---------------------------

OUTCOMES = ("passed", "failed", "skipped", "error")
_SHARD = re.compile(r"(\d+)/(\d+)")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _need(ok: bool, path: str, where: str, what: str, value) -> None:
    if not ok:
        shown = json.dumps(value, default=str)
        raise MergeError(f"{path}: {where}: expected {what}, got {shown[:80]}")


def _means(path: str, where: str, means) -> None:
    _need(isinstance(means, dict), path, where, "a table of numbers", means)
    for metric, value in means.items():
        _need(_number(value), path, f"{where}.{metric}", "a finite number", value)


def check_doc(path: str, doc: dict) -> None:
    """Refuse a shard with a key of the wrong type or a value that is not a finite number (one line)."""
    prov, tests = doc["provenance"], doc["tests"]
    _need(isinstance(prov, dict), path, "provenance", "a table", prov)
    _need(isinstance(prov.get("plugin"), dict), path, "provenance.plugin", "a table", prov.get("plugin"))
    _need(isinstance(prov.get("thresholds"), dict), path, "provenance.thresholds", "a table", prov.get("thresholds"))
    for key in ("path", "sha256"):
        value = prov["thresholds"].get(key)
        _need(isinstance(value, str), path, f"provenance.thresholds.{key}", "a string", value)
    suites = prov.get("suites")
    _need(
        isinstance(suites, dict)
        and all(isinstance(k, str) and isinstance(v, (str, type(None))) for k, v in suites.items()),
        path,
        "provenance.suites",
        "a table of file hashes",
        suites,
    )
    shard = prov.get("shard")
    if shard is not None:
        m = _SHARD.fullmatch(shard) if isinstance(shard, str) else None
        _need(
            bool(m) and 1 <= int(m.group(1)) <= int(m.group(2)),
            path,
            "provenance.shard",
            "'K/N' with 1 <= K <= N",
            shard,
        )
    for key in ("timestamp", "finished"):
        _need(isinstance(prov.get(key), str), path, f"provenance.{key}", "a time string", prov.get(key))
    _need(_number(prov.get("duration_s")), path, "provenance.duration_s", "a finite number", prov.get("duration_s"))
    _need(
        isinstance(prov.get("workers"), int) and not isinstance(prov.get("workers"), bool),
        path,
        "provenance.workers",
        "an integer",
        prov.get("workers"),
    )
    _need(
        isinstance(prov.get("devices"), list) and all(isinstance(d, str) for d in prov["devices"]),
        path,
        "provenance.devices",
        "a list of strings",
        prov.get("devices"),
    )
    _need(isinstance(tests, list), path, "tests", "a list of test records", tests)
    for i, t in enumerate(tests):
        where = f"tests[{i}]"
        _need(isinstance(t, dict), path, where, "a test record (a table)", t)
        _need(
            isinstance(t.get("id"), str) and bool(t["id"]), path, f"{where}.id", "the test's id (a string)", t.get("id")
        )
        where = f"tests[{i}] ({t['id']})"
        _need(isinstance(t.get("name", ""), str), path, f"{where}.name", "a string", t.get("name"))
        _need(t.get("outcome") in OUTCOMES, path, f"{where}.outcome", " or ".join(OUTCOMES), t.get("outcome"))
        if "params" in t:
            params = t["params"]
            _need(
                isinstance(params, dict) and all(isinstance(v, (str, int, float, type(None))) for v in params.values()),
                path,
                f"{where}.params",
                "a table of labels",
                params,
            )
            for key in ("codec", "attack", "objective", "dataset"):
                _need(isinstance(params.get(key), str), path, f"{where}.params.{key}", "a string", params.get(key))
        if "mean" in t:
            _means(path, f"{where}.mean", t["mean"])
        if "modes" in t:
            _need(isinstance(t["modes"], dict), path, f"{where}.modes", "a table of modes", t["modes"])
            for mode, block in t["modes"].items():
                _need(isinstance(block, dict), path, f"{where}.modes.{mode}", "a table", block)
                if "mean" in block:
                    _means(path, f"{where}.modes.{mode}.mean", block["mean"])
                _need(
                    isinstance(block.get("per_image", []), list),
                    path,
                    f"{where}.modes.{mode}.per_image",
                    "a list of rows",
                    block.get("per_image"),
                )
        _need(isinstance(t.get("gates", []), list), path, f"{where}.gates", "a list of gates", t.get("gates"))
        for j, g in enumerate(t.get("gates", [])):
            _need(
                isinstance(g, dict) and isinstance(g.get("metric"), str),
                path,
                f"{where}.gates[{j}]",
                "a gate (metric, value, limit)",
                g,
            )
            for key in ("value", "limit"):
                _need(_number(g.get(key)), path, f"{where}.gates[{j}].{key}", "a finite number", g.get(key))
        _need(isinstance(t.get("errors", []), list), path, f"{where}.errors", "a list", t.get("errors"))
        for key in ("comparison", "codec", "timings"):
            if key in t:
                _need(isinstance(t[key], dict), path, f"{where}.{key}", "a table", t[key])


# -- re-gating ------------------------------------------------------------------------------


def load_gate_thresholds(prov: dict, given: str | None):
    """The thresholds the shards were gated with: their recorded path (or ``given``), same SHA-256."""
    from ..config.errors import ThresholdsError
    from ..config.thresholds import DEFAULT_PATH, load_thresholds
    from ..files import sha256_or_none

    recorded = prov["thresholds"]
    path = given or recorded["path"]
    if not given and recorded.get("plugin_default") and sha256_or_none(path) != recorded["sha256"]:
        path = DEFAULT_PATH  # another install of the plugin: its default file, if it is the same
    digest = sha256_or_none(path)
    if digest is None:
        raise MergeError(
            f"thresholds file {path} (the shards were gated with it) cannot be read; re-gating needs "
            "it: pass --thresholds FILE"
        )
    if digest != recorded["sha256"]:
        raise MergeError(
            f"thresholds file {path} has SHA-256 {digest[:12]}…, the shards were gated with "
            f"{recorded['sha256'][:12]}…; pass --thresholds with the file they used"
        )
    try:
        return load_thresholds(path, is_default=bool(recorded.get("plugin_default")))
    except ThresholdsError as exc:
        raise MergeError(str(exc)) from None


def regate_bitstream(test: dict) -> str | None:
    """A bitstream test's outcome from its findings: failed with one, else as recorded (passed only
    when its decoder was tested, skipped only for a codec without the stream API)."""
    tested = (test.get("bitstream") or {}).get("stream_api")
    untested_pass = test["outcome"] == "passed" and not (tested and test.get("streams_tried"))
    wrong_skip = test["outcome"] == "skipped" and tested is not False
    if not (test.get("failures") or untested_pass or wrong_skip) or test["outcome"] == "failed":
        return None
    said, test["outcome"] = test["outcome"], "failed"
    return f"recorded {said}, its findings say failed"


def regate(test: dict, thresholds) -> str | None:
    """Gates and outcome of ``test`` again from its values; returns what changed (None: nothing)."""
    from ..config.cases import gated_modes
    from ..config.thresholds import match_labels
    from ..verdict.gates import check

    if test.get("kind") == BITSTREAM:
        return regate_bitstream(test)
    params = test.get("params")
    if test.get("kind") not in ("case", "worst-case", "transfer") or not isinstance(params, dict):
        if test["outcome"] == "passed":
            return "a passed test without measurements: failed"
        return None
    modes = ("transfer",) if test["kind"] == "transfer" else gated_modes(params.get("defense") or "none")
    gates = []
    for mode in modes:
        means = means_of(test, mode)
        gates += [
            g.as_dict()
            for g in check(
                means,
                thresholds.limits_for(match_labels(params, mode)),
                mode,
                "transfer_" if mode == "transfer" else "",
            )
        ]
    for g in test.get("gates", []):
        if g.get("kind") == "regression":
            gates.append({**g, "passed": g["value"] <= g["limit"]})
    failed_otherwise = bool(test.get("errors")) or (
        test["outcome"] in ("failed", "error")
        and test.get("error")
        and not str(test["error"]).startswith("GateFailure")
    )
    outcome = (
        "failed"
        if failed_otherwise
        else "skipped"
        if not gates
        else "passed"
        if all(g["passed"] for g in gates)
        else "failed"
    )
    changed = []
    if gates != test.get("gates", []):
        changed.append("gates recomputed")
        test["gates"], test["gated"] = gates, bool(gates)
    if outcome != test["outcome"]:
        changed.append(f"recorded {test['outcome']}, its values say {outcome}")
        test["outcome"] = outcome
    return "; ".join(changed) or None


def _identity(prov: dict) -> dict:
    """What must agree between shards of one run."""
    return {
        "plugin version": prov["plugin"]["version"],
        "plugin commit": prov["plugin"].get("commit"),
        "suites": sorted((os.path.basename(p), h) for p, h in prov["suites"].items()),
        "thresholds": prov["thresholds"]["sha256"],
        **{k: prov.get(k) for k in SAME},
    }


def _empty(doc: dict) -> bool:
    """A shard that collected no test (a suite with fewer model groups than shards): it names no suite."""
    return doc.get("collected") == [] and not doc["tests"]


def check_shards(docs: dict[str, dict]) -> None:
    paths = sorted(docs, key=lambda p: _empty(docs[p]))  # the first one names its suites, if any does
    first = _identity(docs[paths[0]]["provenance"])
    for path in paths[1:]:
        other = _identity(docs[path]["provenance"])
        for key in first:
            if key == "suites" and _empty(docs[path]):
                continue
            if other[key] != first[key]:
                raise MergeError(
                    f"{path} and {paths[0]} come from different runs: their {key} differ "
                    f"({other[key]!r} vs {first[key]!r})"
                )
    shards = {}
    for path, doc in docs.items():
        spec = doc["provenance"].get("shard")
        if not spec:
            raise MergeError(f"{path}: not a shard (run with --nicrobust-shard K/N)")
        k, n = (int(v) for v in _SHARD.fullmatch(spec).groups())
        if k in shards:
            raise MergeError(f"{path} and {shards[k][0]} are both shard {spec}")
        shards[k] = (path, n)
    counts = {n for _, n in shards.values()}
    if len(counts) != 1:
        raise MergeError(f"the shards split the suite differently: {sorted(counts)} parts")
    (n,) = counts
    missing = sorted(set(range(1, n + 1)) - set(shards))
    if missing:
        raise MergeError(
            f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing; given: "
            + ", ".join(f"{k}/{n} ({p})" for k, (p, _) in sorted(shards.items()))
        )


def check_collected(docs: dict[str, dict]) -> list[str]:
    """Every test a shard collected has its record there (a shard that lost tests is named); returns
    the ids the whole run collected."""
    collected: list[str] = []
    for path, doc in docs.items():
        ids = doc.get("collected")
        if ids is None:
            raise MergeError(
                f"{path}: no 'collected' list (written by an older pytest-nicrobust): run that shard again"
            )
        lost = sorted(set(ids) - {t["id"] for t in doc["tests"]})
        if lost:
            more = f" and {len(lost) - 3} more" if len(lost) > 3 else ""
            raise MergeError(
                f"{path}: {len(lost)} test(s) it collected have no record: {', '.join(lost[:3])}{more}; "
                "the shard lost them: run that shard again"
            )
        collected += ids
    return sorted(collected)


def merge_docs(docs: dict[str, dict]) -> tuple[dict, list[dict], dict | None]:
    """(provenance, tests, comparison) of the whole run."""
    check_shards(docs)
    tests, seen = [], {}
    for path, doc in docs.items():
        for t in doc["tests"]:
            if t["id"] in seen:
                raise MergeError(f"test {t['id']} is in both {seen[t['id']]} and {path}")
            seen[t["id"]] = path
            tests.append(from_json(t))  # the headline back beside its modes (the JSON keeps it once)
    tests.sort(key=lambda t: t["id"])
    provs = [doc["provenance"] for doc in docs.values()]
    prov = dict(next((d["provenance"] for d in docs.values() if not _empty(d)), provs[0]))  # one that names its suites
    prov.update(
        timestamp=min(p["timestamp"] for p in provs),
        finished=max(p["finished"] for p in provs),
        duration_s=round(sum(p["duration_s"] for p in provs), 3),
        shard=None,
        command=[p["command"] for p in provs],
        devices=sorted({d for p in provs for d in p["devices"]}),
        workers=sum(p["workers"] for p in provs),
        shards=[
            {
                "shard": p["shard"],
                "file": os.path.abspath(path),
                "timestamp": p["timestamp"],
                "duration_s": p["duration_s"],
            }
            for path, p in zip(docs, provs)
        ],
    )
    return prov, tests, _merge_comparison([doc.get("comparison") for doc in docs.values()])


def _merge_comparison(parts: list) -> dict | None:
    parts = [p for p in parts if p]
    if not parts:
        return None
    if len({p["baseline_sha256"] for p in parts}) > 1:
        raise MergeError("the shards were compared with different baselines")
    # every shard lists the baseline tests it did not run: missing from the whole run = in none of them
    missing = set(parts[0]["missing"]).intersection(*(p["missing"] for p in parts[1:]))
    return {
        **parts[0],
        "compared": sum(p["compared"] for p in parts),
        "missing": sorted(missing),
        "new": sorted({n for p in parts for n in p["new"]}),
        "regressions": sorted({n for p in parts for n in p["regressions"]}),
    }


def check_outputs(args) -> None:
    """``-o``, its transfer folder and ``--alluredir`` replace nothing they must not: not a shard, not
    the thresholds file, not a device node, nothing that is not a results JSON (checked first)."""
    inputs: dict[str, str | None] = {f"an input shard ({p})": p for p in args.shards}
    inputs["the thresholds file (--thresholds)"] = args.thresholds
    try:
        check_output(args.output, "-o", inputs)
        check_output_folder(os.path.splitext(args.output)[0] + "-transfer", "-o's transfer folder")
        if args.alluredir:
            check_output_folder(args.alluredir, "--alluredir")
    except OutputPathError as exc:
        raise MergeError(str(exc)) from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pytest_nicrobust merge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("shards", nargs="+", metavar="SHARD.json", help="the shards' --nicrobust-json files")
    ap.add_argument("-o", "--output", required=True, metavar="PATH", help="merged results JSON")
    ap.add_argument("--alluredir", metavar="DIR", help="write Allure's run files (summary, environment, ...) here")
    ap.add_argument(
        "--thresholds",
        metavar="FILE",
        help="the thresholds file the shards were gated with, when it "
        "is not at the path they recorded (its SHA-256 must match)",
    )
    args = ap.parse_args(argv)
    try:
        twice = sorted({p for p in args.shards if args.shards.count(p) > 1})
        if twice:
            raise MergeError(f"{twice[0]} given twice")
        check_outputs(args)
        docs = {path: _load(path) for path in args.shards}
        prov, tests, comparison = merge_docs(docs)
        collected = check_collected(docs)
        below = below_members(tests)  # before re-gating: such a worst case fails
        thresholds = load_gate_thresholds(prov, args.thresholds)
        changes = [(t["id"], why) for t in tests for why in [regate(t, thresholds)] if why]
    except MergeError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 2
    for line in below:
        print(f"merge: error: {line}", file=sys.stderr)
    for test_id, why in changes:
        print(f"merge: warning: {test_id}: re-gated from its values: {why}", file=sys.stderr)
    for path, doc in docs.items():
        if _empty(doc):
            print(
                f"merge: warning: {path} (shard {doc['provenance']['shard']}) ran no test: the suite has fewer "
                "model groups than shards",
                file=sys.stderr,
            )
    out = Outputs()
    write_outputs(out, prov, tests, comparison, args.output, args.alluredir, collected=collected)
    for line in terminal.gate_table(tests):
        print(line)
    github.report(tests, os.environ, print, out.problems)  # the job summary and annotations, on GitHub Actions
    for problem in out.problems:
        print(f"warning: {problem}", file=sys.stderr)
    for path in out.written:
        print(f"written: {path}")
    print(out.extras.get("summary", {}).get("verdict_line", ""))
    return 1 if verdict_facts(tests)["failed"] else 0  # from the records, not from the summary's text
