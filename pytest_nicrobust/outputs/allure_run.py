"""Run-level Allure files, written by the controller only (never by xdist workers).

* ``environment.properties`` and ``executor.json``: the run's provenance (versions, device, seed,
  suite and thresholds SHA-256, each codec's weights and their SHA-256);
* ``categories.json``: failures grouped by cause (threshold per metric, bitrate blow-up,
  codec error / NaN, data error, config error);
* a standalone test result "nicrobust run summary" carrying the score card, the
  transfer heatmaps and CSVs as attachments.
"""

from __future__ import annotations

import json
import os
import time
import uuid

from ..metrics.registry import GATES

def categories() -> list[dict]:
    """Allure puts a result in the first category whose pattern matches (allure2 #3330): a failed
    gate's message names the gate most over its limit first, so that is the category; within it,
    results group by message, i.e. by codec. Every failed metric of a test is in its Behaviors labels."""
    def gate(metric, what):
        return rf"(?s).*GateFailure: {metric}( \[[a-z-]+\])? {what}:.*"

    cats = [{"name": "run verdict", "matchedStatuses": ["failed", "broken", "skipped"], "messageRegex": r"(?s)^verdict:.*"}]
    cats += [{"name": f"over the limit: {m}", "matchedStatuses": ["failed"], "messageRegex": gate(m, "over its limit")}
             for m in GATES]
    cats += [
        {"name": "worse than the baseline", "matchedStatuses": ["failed"],
         "messageRegex": gate(r"\S+", "worse than the baseline allows")},
        {"name": "codec error / NaN output", "matchedStatuses": ["failed", "broken"],
         "messageRegex": r"(?s).*(CodecError|NonFiniteError|codec error).*"},
        {"name": "time limit", "matchedStatuses": ["failed", "broken"], "messageRegex": r"(?s).*TimeLimitExceeded.*"},
        {"name": "data error", "matchedStatuses": ["failed", "broken"], "messageRegex": r"(?s).*(DataError|data error).*"},
        {"name": "config error", "matchedStatuses": ["failed", "broken"],
         "messageRegex": r"(?s).*(SuiteError|ThresholdsError|BaselineError|config error).*"},
    ]
    return cats


def environment(prov: dict, results: list[dict]) -> dict:
    """environment.properties: provenance flattened, plus each codec's weights and their SHA-256."""
    env = {"pytest-nicrobust": prov["plugin"]["version"], "pytest-nicrobust.commit": prov["plugin"]["commit"] or "unknown",
           "nicrobust.seed": prov["seed"], "nicrobust.thresholds": prov["thresholds"]["path"],
           "nicrobust.thresholds.sha256": prov["thresholds"]["sha256"], "nicrobust.workers": prov["workers"],
           "device": ", ".join(prov["devices"]) or "unknown", "python": prov["python"], "started": prov["timestamp"]}
    env.update({p: v for p, v in prov["packages"].items() if p in ("torch", "compressai", "pytest")})
    for path, digest in prov["suites"].items():
        env[f"suite.{os.path.basename(path)}.sha256"] = digest
    for r in results:
        for codec in (r.get("codec"), r.get("target_codec")):
            if codec:
                key = f"codec.{codec['label']}[{codec['quality']}]"
                env[f"{key}.weights"] = codec.get("file") or codec.get("weights")
                env[f"{key}.sha256"] = codec.get("sha256", "none (random init)" if codec.get("random_init") else "unknown")
    return env


def executor(prov: dict, build_order: int) -> dict:
    """executor.json: who ran the build (Allure shows it on the overview and orders trends by it)."""
    return {"name": "pytest-nicrobust", "type": "pytest", "buildName": f"pytest-nicrobust {prov['timestamp']}",
            "reportName": "nicrobust robustness gate", "buildOrder": build_order}


def _property(text) -> str:
    return str(text).replace("\\", "\\\\").replace("\n", " ").replace("=", "\\=").replace(":", "\\:")


def write_environment(alluredir: str, env: dict) -> None:
    with open(os.path.join(alluredir, "environment.properties"), "w") as f:
        f.writelines(f"{_property(k).replace(' ', '_')}={_property(v)}\n" for k, v in sorted(env.items()))


def write_json(alluredir: str, name: str, doc) -> None:
    with open(os.path.join(alluredir, name), "w") as f:
        json.dump(doc, f, indent=1)


_TYPES = {".png": "image/png", ".csv": "text/csv", ".json": "application/json", ".html": "text/html"}


def write_run_result(alluredir: str, name: str, description_html: str, files: list[tuple[str, bytes]],
                     status: str, message: str) -> None:
    """A standalone Allure result with ``files`` [(attachment name, bytes)] attached.

    Its status is the run's verdict (failed when any robustness test failed), so it never
    counts as one more passed test in a run that failed.
    """
    attachments = []
    for title, body in files:
        ext = os.path.splitext(title)[1]
        source = f"{uuid.uuid4()}-attachment{ext}"
        with open(os.path.join(alluredir, source), "wb") as f:
            f.write(body)
        attachments.append({"name": title, "source": source, "type": _TYPES.get(ext, "text/plain")})
    now = int(time.time() * 1000)
    result = {"uuid": str(uuid.uuid4()), "historyId": f"nicrobust-{name}", "testCaseId": f"nicrobust-{name}",
              "name": name, "fullName": f"nicrobust.{name}", "status": status, "stage": "finished",
              "statusDetails": {"message": message},
              "start": now, "stop": now, "descriptionHtml": description_html, "attachments": attachments,
              "labels": [{"name": "parentSuite", "value": "nicrobust"}, {"name": "suite", "value": "run summary"},
                         {"name": "framework", "value": "pytest-nicrobust"}]}
    tmp = os.path.join(alluredir, f"{result['uuid']}-result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, tmp[:-4])
