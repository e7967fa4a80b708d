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

from ..files import write_file
from ..metrics.registry import GATES


def categories() -> list[dict]:
    """Allure puts a result in the first category whose pattern matches (allure2 #3330): a failed
    gate's message names the gate most over its limit first, so that is the category; within it,
    results group by message, i.e. by codec. Every failed metric of a test is in its Behaviors labels."""

    def gate(metric, what):
        return rf"(?s).*GateFailure: {metric}( \[[a-z-]+\])? {what}:.*"

    cats = [
        {"name": "run verdict", "matchedStatuses": ["failed", "broken", "skipped"], "messageRegex": r"(?s)^verdict:.*"}
    ]
    cats += [
        {"name": f"over the limit: {m}", "matchedStatuses": ["failed"], "messageRegex": gate(m, "over its limit")}
        for m in GATES
    ]
    cats += [
        {
            "name": "gradient masking",
            "matchedStatuses": ["failed"],
            "messageRegex": r"(?s).*gradient masking suspected.*",
        },
        {
            "name": "attack not converged",
            "matchedStatuses": ["failed"],
            "messageRegex": r"(?s).*attack not converged.*",
        },
        {
            "name": "worse than the baseline",
            "matchedStatuses": ["failed"],
            "messageRegex": gate(r"\S+", "worse than the baseline allows"),
        },
        {"name": "decoder finding", "matchedStatuses": ["failed"], "messageRegex": r"(?s).*DecoderFindings:.*"},
        {
            "name": "codec error / NaN output",
            "matchedStatuses": ["failed", "broken"],
            "messageRegex": r"(?s).*(CodecError|NonFiniteError|codec error).*",
        },
        {"name": "time limit", "matchedStatuses": ["failed", "broken"], "messageRegex": r"(?s).*TimeLimitExceeded.*"},
        {
            "name": "data error",
            "matchedStatuses": ["failed", "broken"],
            "messageRegex": r"(?s).*(DataError|data error).*",
        },
        {
            "name": "config error",
            "matchedStatuses": ["failed", "broken"],
            "messageRegex": r"(?s).*(SuiteError|ThresholdsError|BaselineError|config error).*",
        },
    ]
    return cats


def _shown_path(path: str | None, cwd: str) -> str:
    """A path as the overview shows it: relative to the run's folder, else its name (no absolute paths)."""
    if not path:
        return "unknown"
    rel = os.path.relpath(path, cwd) if cwd and os.path.isabs(path) else path
    return rel if not rel.startswith("..") and not os.path.isabs(rel) else os.path.basename(path)


def environment(prov: dict, results: list[dict]) -> dict:
    """environment.properties: what a reader of the overview needs to place the run (versions, seed,
    device, the files by name, each codec's weights by name). No hashes and no absolute paths: the
    SHA-256 of every file and the full paths stay in the results JSON's provenance and records."""
    cwd = prov.get("cwd", "")
    env = {
        "pytest-nicrobust": prov["plugin"]["version"],
        "nicrobust.seed": prov["seed"],
        "nicrobust.thresholds": "the plugin's own"
        if prov["thresholds"].get("plugin_default")
        else _shown_path(prov["thresholds"]["path"], cwd),
        "nicrobust.workers": prov["workers"],
        "device": ", ".join(prov["devices"]) or "unknown",
        "python": prov["python"],
        "started": prov["timestamp"],
        "suites": ", ".join(sorted(_shown_path(p, cwd) for p in prov["suites"])) or "none",
    }
    env.update({p: v for p, v in prov["packages"].items() if p in ("torch", "compressai", "pytest")})
    for r in results:
        for codec in (r.get("codec"), r.get("target_codec")):
            if codec:
                weights = codec.get("file") or codec.get("weights")
                shown = "random init" if codec.get("random_init") else _shown_path(weights, cwd) if weights else "none"
                env[f"codec.{codec['label']}[{codec['quality']}]"] = shown
    return env


def ci_build(env) -> dict | None:
    """Build number, name and URLs of a CI run, from GitHub Actions' or GitLab CI's own variables."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_NUMBER", "").isdigit():
        run = (
            f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/"
            f"{env.get('GITHUB_RUN_ID', '')}"
        )
        return {
            "type": "github",
            "buildOrder": int(env["GITHUB_RUN_NUMBER"]),
            "buildName": f"{env.get('GITHUB_WORKFLOW', 'workflow')} #{env['GITHUB_RUN_NUMBER']}",
            "buildUrl": run,
            "reportUrl": env.get("NICROBUST_REPORT_URL", ""),
        }
    if env.get("GITLAB_CI") == "true" and env.get("CI_PIPELINE_IID", "").isdigit():
        return {
            "type": "gitlab",
            "buildOrder": int(env["CI_PIPELINE_IID"]),
            "buildName": f"{env.get('CI_PROJECT_PATH', 'pipeline')} #{env['CI_PIPELINE_IID']}",
            "buildUrl": env.get("CI_PIPELINE_URL", ""),
            "reportUrl": env.get("NICROBUST_REPORT_URL", ""),
        }
    return None


def _counter_path(alluredir: str) -> str:
    import hashlib

    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(os.path.abspath(alluredir).encode()).hexdigest()[:16]
    return os.path.join(cache, "pytest-nicrobust", f"allure-build-{key}")


def next_build_order(alluredir: str) -> int:
    """Outside CI: one more than the last build of this results folder (its history, or a counter
    kept in the user's cache folder, since --clean-alluredir empties the results)."""
    last = 0
    try:
        with open(os.path.join(alluredir, "history", "history-trend.json")) as f:
            last = max((int(e.get("buildOrder") or 0) for e in json.load(f)), default=0)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    path = _counter_path(alluredir)
    try:
        with open(path) as f:
            last = max(last, int(f.read().strip() or 0))
    except (OSError, ValueError):
        pass
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w") as f:
            f.write(str(last + 1))
    except OSError:
        pass
    return last + 1


def executor(
    prov: dict,
    build_order: int | None = None,
    env=None,
    alluredir: str = "allure-results",
    verdict: str = "",
) -> dict:
    """executor.json: who ran the build (Allure shows it on the overview and orders trends by
    ``buildOrder``): the CI's build number, name and URL on GitHub or GitLab, else a counter.
    ``reportName`` is the overview's title (unless ``allure generate --name`` gives one): the verdict line."""
    env = os.environ if env is None else env
    ci = ci_build(env)
    name = f"nicrobust {verdict}" if verdict else "nicrobust robustness gate"
    if ci:
        return {"name": "pytest-nicrobust", "reportName": name, **ci}
    order = build_order if build_order is not None else next_build_order(alluredir)
    return {
        "name": "pytest-nicrobust",
        "type": "pytest",
        "buildName": f"run #{order} ({prov['timestamp']})",
        "reportName": name,
        "buildOrder": order,
    }


def _property(text) -> str:
    return str(text).replace("\\", "\\\\").replace("\n", " ").replace("=", "\\=").replace(":", "\\:")


def write_environment(alluredir: str, env: dict) -> None:
    text = "".join(f"{_property(k).replace(' ', '_')}={_property(v)}\n" for k, v in sorted(env.items()))
    write_file(os.path.join(alluredir, "environment.properties"), text.encode())


def write_json(alluredir: str, name: str, doc) -> None:
    """A file of a fixed name: written only into a regular file (never a FIFO, a device or a link)."""
    write_file(os.path.join(alluredir, name), json.dumps(doc, indent=1).encode())


_TYPES = {".png": "image/png", ".csv": "text/csv", ".json": "application/json", ".html": "text/html"}


def write_run_result(
    alluredir: str, name: str, description_html: str, files: list[tuple[str, bytes]], status: str, message: str
) -> None:
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
    result = {
        "uuid": str(uuid.uuid4()),
        "historyId": f"nicrobust-{name}",
        "testCaseId": f"nicrobust-{name}",
        "name": name,
        "fullName": f"nicrobust.{name}",
        "status": status,
        "stage": "finished",
        "statusDetails": {"message": message},
        "start": now,
        "stop": now,
        "descriptionHtml": description_html,
        "attachments": attachments,
        "labels": [
            {"name": "parentSuite", "value": "nicrobust"},
            {"name": "suite", "value": "run summary"},
            {"name": "framework", "value": "pytest-nicrobust"},
        ],
    }
    tmp = os.path.join(alluredir, f"{result['uuid']}-result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, tmp[:-4])
