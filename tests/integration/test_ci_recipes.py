"""docs/ci.md's two recipes, run as written: the YAML is read from the page, each job's steps run in
bash in a folder of its own, with stand-ins for what only a CI service has (checkout, artifacts,
cache, ``gh``, ``curl``, ``pip`` from the index). Three shards of a small suite, the merge, the
one-file report; then what each step left: the job summaries, the annotations (once, from the
merge), the JUnit report for GitLab's merge-request view, the artifacts.

Needs the Allure command line (``make tools``); skipped with the reason without it.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from helpers import tiny_checkpoint

yaml = pytest.importorskip("yaml", reason="PyYAML reads the recipes (requirements.txt)")

ROOT = Path(__file__).resolve().parents[2]
SUITE = """
images = 1
crop = 64
transfer = false
worst_case = false
{codecs}
[[attacks]]
name = "pgd"
presets = ["eps7"]
steps = 1

[[datasets]]
name = "skimage-photos"
"""
CODEC = '[[codecs]]\nmodel = "bmshj2018-factorized"\nname = "{name}"\nweights = "tiny.pt"\nqualities = [1]\n'
# tiny-c may not degrade at all: its tests fail, the others pass
THRESHOLDS = 'extends = false\n[defaults]\ndelta_psnr = 100.0\n\n[overrides.strict]\nmatch = { codec = "tiny-c" }\ndelta_psnr = 0.0\n'
SHIM = {
    "pip": 'echo "$@" >> "$SHIM_LOG"; [ "$*" = "install pytest-nicrobust[report]" ]',
    "gh": "exit 1",  # no release yet: no baseline
    "curl": "exit 22",
    "npx": '[ "$1" = "allure-commandline@2.46.1" ] && shift && exec "$ALLURE" "$@"',
}


def allure_cli() -> str | None:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "allure"
    return os.environ.get("NICROBUST_ALLURE") or (str(local) if local.exists() else shutil.which("allure"))


def recipe(marker: str) -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "ci.md").read_text(), re.S)
    return next(yaml.safe_load(b) for b in blocks if marker in b)


@pytest.fixture
def ci(tmp_path):
    """The repository a CI run checks out, the stand-ins, and a runner for one job's shell."""
    allure = allure_cli()
    if not allure or not shutil.which("java"):
        pytest.skip("needs the Allure command line and Java (make tools)")
    repo = tmp_path / "repo"
    (repo / "suites").mkdir(parents=True)
    tiny_checkpoint(repo / "suites" / "tiny.pt")
    codecs = "\n".join(CODEC.format(name=n) for n in ("tiny-a", "tiny-b", "tiny-c"))
    (repo / "suites" / "release.suite.toml").write_text(SUITE.format(codecs=codecs))
    (repo / "thresholds.toml").write_text(THRESHOLDS)
    shims = tmp_path / "shims"
    shims.mkdir()
    for name, body in SHIM.items():
        (shims / name).write_text(f"#!/bin/bash\n{body}\n")
        (shims / name).chmod(0o755 | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "GITHUB_", "CI_", "GITLAB"))}
    env.update(
        PATH=os.pathsep.join([str(shims), os.path.dirname(sys.executable), env["PATH"]]),
        PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]),
        PYTEST_ADDOPTS="-p no:randomly -p no:cacheprovider --nicrobust-metrics psnr,mse",
        PYTEST_XDIST_AUTO_NUM_WORKERS="1",
        SHIM_LOG=str(tmp_path / "pip.log"),
        ALLURE=allure,
        DATA=str(tmp_path),
    )

    def shell(script: str, cwd: Path, extra: dict) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=cwd,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=900,
        )

    return repo, tmp_path, shell


def _expand(text: str, values: dict) -> str:
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: str(values[m.group(1)]), text)


def run_github_job(job: dict, values: dict, workspace: Path, repo: Path, artifacts: Path, shell) -> list:
    """One job's steps as GitHub runs them: stop at a failed step, except those marked ``if: always()``."""
    workspace.mkdir()
    extra = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_RUN_ID": "7",
        "GITHUB_RUN_NUMBER": "3",
    }
    extra["GITHUB_STEP_SUMMARY"] = str(workspace.parent / f"{workspace.name}.summary.md")
    failed, log = False, []
    for step in job["steps"]:
        if failed and "always()" not in str(step.get("if", "")):
            continue
        uses = step.get("uses", "")
        with_ = {k: _expand(str(v), values) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("actions/checkout"):
            shutil.copytree(repo, workspace, dirs_exist_ok=True)
        elif uses.startswith("actions/upload-artifact"):
            for path in with_["path"].split("\n"):
                found = glob.glob(str(workspace / path))
                assert found, f"artifact {with_['name']}: {path} does not exist; " + "".join(
                    p.stdout[-1500:] + p.stderr[-1500:] for p in log
                )
                for one in found:  # as upload-artifact stores them: a folder's contents, a file by its name
                    dest = artifacts / with_["name"]
                    dest.mkdir(parents=True, exist_ok=True)
                    if os.path.isdir(one):
                        shutil.copytree(one, dest, dirs_exist_ok=True)
                    else:
                        shutil.copy(one, dest / os.path.basename(one))
        elif uses.startswith("actions/download-artifact"):  # every artifact, each into a folder of its name
            for folder in artifacts.iterdir():
                shutil.copytree(folder, workspace / folder.name, dirs_exist_ok=True)
        elif uses.startswith("actions/cache"):
            pass
        else:
            env = {k: _expand(str(v), values) for k, v in (step.get("env") or {}).items()}
            proc = shell(_expand(step["run"], values), workspace, {**extra, **env})
            log.append(proc)
            failed = failed or proc.returncode != 0
    return log


def test_the_github_actions_recipe_runs(ci):
    repo, tmp, shell = ci
    jobs = recipe("jobs:")["jobs"]
    artifacts = tmp / "artifacts"
    shard_logs = []
    for shard in jobs["shard"]["strategy"]["matrix"]["shard"]:
        values = {"matrix.shard": shard, "github.token": "t", "github.run_id": "7"}
        shard_logs += run_github_job(jobs["shard"], values, tmp / f"shard-job-{shard}", repo, artifacts, shell)
    report_logs = run_github_job(jobs["report"], {"github.run_id": "7"}, tmp / "report-job", repo, artifacts, shell)

    out = "".join(p.stdout for p in shard_logs)
    assert "nicrobust verdict: FAILED" in out and "::error" not in out  # a shard leaves annotations to the merge
    for shard in (1, 2, 3):
        summary = (tmp / f"shard-job-{shard}.summary.md").read_text()
        assert "nicrobust verdict" in summary
    merge = next(p for p in report_logs if "pytest_nicrobust merge" in p.args[-1])
    assert merge.returncode == 1, merge.stderr  # the merged verdict failed: the job fails
    errors = [line for line in merge.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and errors[0].startswith("::error file=suites/release.suite.toml,line=")
    assert "title=nicrobust%3A delta_psnr over its limit::tiny-c[q1-pgd-eps7+steps:1" in errors[0]
    summary = (tmp / "report-job.summary.md").read_text()
    assert "### ❌ nicrobust verdict: FAILED" in summary and "#### Gate matrix" in summary
    assert "| tiny-c[q1-pgd-eps7+steps:1-recon_error-skimage-photos-none] | delta_psnr |" in summary
    assert (artifacts / "robustness-report" / "index.html").stat().st_size > 100_000
    assert (artifacts / "robustness-results" / "results.json").exists()
    assert (tmp / "pip.log").read_text().splitlines() == ["install pytest-nicrobust[report]"] * 4


def test_the_gitlab_recipe_runs(ci):
    repo, tmp, shell = ci
    doc = recipe("stages:")
    gate, report = doc["gate"], doc["report"]
    report_dir = tmp / "report-job"
    shutil.copytree(repo, report_dir)
    for index in range(1, gate["parallel"] + 1):
        job = tmp / f"gate-{index}"
        shutil.copytree(repo, job)
        extra = {"GITLAB_CI": "true", "CI_NODE_INDEX": str(index), "CI_NODE_TOTAL": str(gate["parallel"])}
        proc = shell("\n".join(gate["script"]), job, extra)
        assert "nicrobust verdict" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
        for pattern in gate["artifacts"]["paths"]:  # the next stage gets the artifacts
            for one in glob.glob(str(job / pattern)):
                shutil.copytree(one, report_dir / os.path.relpath(one, job), dirs_exist_ok=True)
    junit = sorted(glob.glob(str(report_dir / gate["artifacts"]["reports"]["junit"])))
    assert len(junit) == 3
    failures = {}
    for path in junit:
        for case in ElementTree.parse(path).getroot().iter("testcase"):
            props = {p.get("name") for p in case.iter("property")}
            assert {"nicrobust.delta_psnr", "nicrobust.delta_psnr.limit"} <= props
            for failure in case.iter("failure"):
                failures[case.get("name")] = failure.text
    assert list(failures) == ["tiny-c[q1-pgd-eps7+steps:1-recon_error-skimage-photos-none]"]
    assert "delta_psnr" in next(iter(failures.values())) and "> limit 0 dB" in next(iter(failures.values()))
    proc = shell("\n".join(report["script"]), report_dir, {"GITLAB_CI": "true"})
    assert proc.returncode == 1, proc.stderr[-3000:]  # exit ${status}: the merged verdict failed
    for path in report["artifacts"]["paths"]:
        assert glob.glob(str(report_dir / path)), path
