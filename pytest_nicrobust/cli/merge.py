"""``python -m pytest_nicrobust merge shard-*/results.json -o results.json [--alluredir merged]``.

Joins the JSON of the shards of one run (``--nicrobust-shard K/N``) and rebuilds what a whole run
writes: the summaries (verdict, gate matrix, score card), the transfer matrices and files, the
comparison with a baseline, and Allure's run files (environment, executor, categories, run summary)
into ``--alluredir``; give that folder to ``allure generate`` together with the shards' own
``allure-results``. Shards from different suites, thresholds, seeds or plugin versions, repeated or
missing shards, and a shard that did not finish are refused with a message naming the files.
Exit status: 0 when the merged verdict passed, 1 when it failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..outputs import Outputs, terminal, write_outputs

SAME = ("seed", "metrics")


class MergeError(Exception):
    pass


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: not a results JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or "tests" not in doc or "provenance" not in doc:
        raise MergeError(f"{path}: not a --nicrobust-json file of this plugin (no tests or provenance)")
    if not doc.get("complete"):
        raise MergeError(f"{path}: the run that wrote it did not finish (\"complete\": false); run that shard again")
    return doc


def _identity(prov: dict) -> dict:
    """What must agree between shards of one run."""
    return {"plugin version": prov["plugin"]["version"], "plugin commit": prov["plugin"].get("commit"),
            "suites": sorted((os.path.basename(p), h) for p, h in prov["suites"].items()),
            "thresholds": prov["thresholds"]["sha256"], **{k: prov.get(k) for k in SAME}}


def check_shards(docs: dict[str, dict]) -> None:
    paths = list(docs)
    first = _identity(docs[paths[0]]["provenance"])
    for path in paths[1:]:
        other = _identity(docs[path]["provenance"])
        for key in first:
            if other[key] != first[key]:
                raise MergeError(f"{path} and {paths[0]} come from different runs: their {key} differ "
                                 f"({other[key]!r} vs {first[key]!r})")
    shards = {}
    for path, doc in docs.items():
        spec = doc["provenance"].get("shard")
        if not spec:
            raise MergeError(f"{path}: not a shard (run with --nicrobust-shard K/N)")
        k, n = (int(v) for v in spec.split("/"))
        if k in shards:
            raise MergeError(f"{path} and {shards[k][0]} are both shard {spec}")
        shards[k] = (path, n)
    counts = {n for _, n in shards.values()}
    if len(counts) != 1:
        raise MergeError(f"the shards split the suite differently: {sorted(counts)} parts")
    (n,) = counts
    missing = sorted(set(range(1, n + 1)) - set(shards))
    if missing:
        raise MergeError(f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing; given: "
                         + ", ".join(f"{k}/{n} ({p})" for k, (p, _) in sorted(shards.items())))


def merge_docs(docs: dict[str, dict]) -> tuple[dict, list[dict], dict | None]:
    """(provenance, tests, comparison) of the whole run."""
    check_shards(docs)
    tests, seen = [], {}
    for path, doc in docs.items():
        for t in doc["tests"]:
            if t["id"] in seen:
                raise MergeError(f"test {t['id']} is in both {seen[t['id']]} and {path}")
            seen[t["id"]] = path
            tests.append(t)
    tests.sort(key=lambda t: t["id"])
    provs = [doc["provenance"] for doc in docs.values()]
    prov = dict(provs[0])
    prov.update(timestamp=min(p["timestamp"] for p in provs), finished=max(p["finished"] for p in provs),
                duration_s=round(sum(p["duration_s"] for p in provs), 3), shard=None,
                command=[p["command"] for p in provs], devices=sorted({d for p in provs for d in p["devices"]}),
                workers=sum(p["workers"] for p in provs),
                shards=[{"shard": p["shard"], "file": os.path.abspath(path), "timestamp": p["timestamp"],
                         "duration_s": p["duration_s"]} for path, p in zip(docs, provs)])
    return prov, tests, _merge_comparison([doc.get("comparison") for doc in docs.values()])


def _merge_comparison(parts: list) -> dict | None:
    parts = [p for p in parts if p]
    if not parts:
        return None
    if len({p["baseline_sha256"] for p in parts}) > 1:
        raise MergeError("the shards were compared with different baselines")
    # every shard lists the baseline tests it did not run: missing from the whole run = in none of them
    missing = set(parts[0]["missing"]).intersection(*(p["missing"] for p in parts[1:]))
    return {**parts[0], "compared": sum(p["compared"] for p in parts), "missing": sorted(missing),
            "new": sorted({n for p in parts for n in p["new"]}),
            "regressions": sorted({n for p in parts for n in p["regressions"]})}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pytest_nicrobust merge", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards", nargs="+", metavar="SHARD.json", help="the shards' --nicrobust-json files")
    ap.add_argument("-o", "--output", required=True, metavar="PATH", help="merged results JSON")
    ap.add_argument("--alluredir", metavar="DIR", help="write Allure's run files (summary, environment, ...) here")
    args = ap.parse_args(argv)
    try:
        twice = sorted({p for p in args.shards if args.shards.count(p) > 1})
        if twice:
            raise MergeError(f"{twice[0]} given twice")
        docs = {path: _load(path) for path in args.shards}
        prov, tests, comparison = merge_docs(docs)
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
            raise MergeError(f"-o {args.output}: its folder does not exist")
    except MergeError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 2
    out = Outputs()
    write_outputs(out, prov, tests, comparison, args.output, args.alluredir)
    for line in terminal.gate_table(tests):
        print(line)
    for problem in out.problems:
        print(f"warning: {problem}", file=sys.stderr)
    for path in out.written:
        print(f"written: {path}")
    verdict = out.extras.get("summary", {}).get("verdict_line", "")
    print(verdict)
    return 1 if verdict.startswith("verdict: FAILED") else 0
