"""outputs.allure_run's executor.json: the CI's build number, name and URL, else a counter."""

from __future__ import annotations

import json

from pytest_nicrobust.outputs.allure_run import executor

PROV = {"timestamp": "2026-12-01T16:00:00Z"}


def test_github_and_gitlab_variables_give_the_build():
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_NUMBER": "57",
        "GITHUB_RUN_ID": "99",
        "GITHUB_WORKFLOW": "gate",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "org/codec",
    }
    e = executor(PROV, env=github)
    assert e["buildOrder"] == 57 and e["buildName"] == "gate #57" and e["type"] == "github"
    assert e["buildUrl"] == "https://github.com/org/codec/actions/runs/99"
    gitlab = {
        "GITLAB_CI": "true",
        "CI_PIPELINE_IID": "12",
        "CI_PROJECT_PATH": "org/codec",
        "CI_PIPELINE_URL": "https://gitlab.com/org/codec/-/pipelines/4",
    }
    e = executor(PROV, env=gitlab)
    assert e["buildOrder"] == 12 and e["buildName"] == "org/codec #12" and e["buildUrl"].endswith("/pipelines/4")


def test_elsewhere_a_counter_one_past_the_history(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    results = tmp_path / "allure-results"
    first = executor(PROV, env={}, alluredir=str(results))["buildOrder"]
    second = executor(PROV, env={}, alluredir=str(results))["buildOrder"]
    assert (first, second) == (1, 2)  # not Unix seconds: trend labels read #1, #2
    (results / "history").mkdir(parents=True)
    (results / "history" / "history-trend.json").write_text(json.dumps([{"buildOrder": 40}, {"buildOrder": 41}]))
    e = executor(PROV, env={}, alluredir=str(results))
    assert e["buildOrder"] == 42 and e["buildName"].startswith("run #42")
