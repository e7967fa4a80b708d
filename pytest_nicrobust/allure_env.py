"""Run-level Allure files, written by the controller only (never by xdist workers).

* ``environment.properties``: versions, device, seed, git revision of each codec's checkpoint;
* ``categories.json``: failures grouped by cause (threshold per metric, bitrate blow-up,
  codec error / NaN, data error, config error);
* a standalone test result "nicrobust run summary" carrying the score card, the
  transfer heatmaps and CSVs as attachments.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from importlib.metadata import PackageNotFoundError, version

from .thresholds import GATES

_MODE = r"( \[[a-z-]+\])?"


def categories() -> list[dict]:
    bad = ["failed", "broken"]
    cats = [
        {"name": "codec error / NaN output", "matchedStatuses": bad,
         "messageRegex": r"(?s).*(= NaN|CodecError|codec error).*"},
        {"name": "data error", "matchedStatuses": bad, "messageRegex": r"(?s).*(DataError|data error).*"},
        {"name": "config error", "matchedStatuses": bad,
         "messageRegex": r"(?s).*(SuiteError|ThresholdsError|config error).*"},
        {"name": "bitrate blow-up", "matchedStatuses": ["failed"],
         "messageRegex": rf"(?s).*\b(transfer_)?(bitrate_increase|delta_bpp){_MODE} = .*> limit.*"},
    ]
    cats += [{"name": f"threshold exceeded: {m}", "matchedStatuses": ["failed"],
              "messageRegex": rf"(?s).*\b{m}{_MODE} = .*> limit.*"}
             for m in GATES if not m.endswith(("bitrate_increase", "delta_bpp"))]
    return cats


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def git_revision(path: str) -> str | None:
    """HEAD of the git repository holding ``path`` (+dirty when the file differs), or None."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        rev = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", folder, "status", "--porcelain", "--", path],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty else "")


def environment(results: list[dict], seed: int) -> dict:
    from . import __version__
    from .codecs.shipped import CHECKPOINT_DIR

    env = {"pytest-nicrobust": __version__, "torch": _version("torch"), "compressai": _version("compressai"),
           "pytest": _version("pytest"), "nicrobust.seed": str(seed)}
    devices = sorted({r["device"] for r in results if r.get("device")})
    env["device"] = ",".join(devices) or "unknown"
    for r in results:
        for codec in (r.get("codec"), r.get("target_codec")):
            if not codec:
                continue
            where = codec.get("file") or (CHECKPOINT_DIR if codec.get("weights") == "nicrobust" else None)
            key = f"codec.{codec['label']}[q{codec['quality']}]"
            env[f"{key}.weights"] = str(codec.get("weights"))
            if where and f"{key}.git" not in env:
                env[f"{key}.git"] = git_revision(where) or "not in a git repository"
    return env


def write_environment(alluredir: str, env: dict) -> None:
    with open(os.path.join(alluredir, "environment.properties"), "w") as f:
        f.writelines(f"{k.replace(' ', '_')}={v}\n" for k, v in sorted(env.items()))


def write_categories(alluredir: str) -> None:
    with open(os.path.join(alluredir, "categories.json"), "w") as f:
        json.dump(categories(), f, indent=1)


_TYPES = {".png": "image/png", ".csv": "text/csv", ".json": "application/json", ".html": "text/html"}


def write_run_result(alluredir: str, name: str, description_html: str, files: list[tuple[str, bytes]]) -> None:
    """A standalone Allure test result (passed) with ``files`` [(attachment name, bytes)] attached."""
    attachments = []
    for title, body in files:
        ext = os.path.splitext(title)[1]
        source = f"{uuid.uuid4()}-attachment{ext}"
        with open(os.path.join(alluredir, source), "wb") as f:
            f.write(body)
        attachments.append({"name": title, "source": source, "type": _TYPES.get(ext, "text/plain")})
    now = int(time.time() * 1000)
    result = {"uuid": str(uuid.uuid4()), "historyId": f"nicrobust-{name}", "testCaseId": f"nicrobust-{name}",
              "name": name, "fullName": f"nicrobust.{name}", "status": "passed", "stage": "finished",
              "start": now, "stop": now, "descriptionHtml": description_html, "attachments": attachments,
              "labels": [{"name": "parentSuite", "value": "nicrobust"}, {"name": "suite", "value": "run summary"},
                         {"name": "framework", "value": "pytest-nicrobust"}]}
    tmp = os.path.join(alluredir, f"{result['uuid']}-result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, tmp[:-4])
