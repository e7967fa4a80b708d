"""The job summary (Markdown) and the ::error annotations GitHub Actions shows."""

from __future__ import annotations

from pytest_nicrobust.outputs.github import MAX_ANNOTATIONS, annotations, job_summary, report

PARAMS = {
    "codec": "ours",
    "bitrate": "q3",
    "attack": "pgd[eps7]",
    "objective": "recon_error",
    "dataset": "d",
    "defense": "none",
}


def _test(i, value, suite):
    gate = {"metric": "delta_psnr", "value": value, "limit": 1.5, "passed": value <= 1.5, "mode": "undefended"}
    params = {**PARAMS, "attack": f"pgd[eps{i}]"}
    return {
        "id": f"s::ours[q3-{i}]",
        "name": f"ours[q3-pgd-eps{i}]",
        "kind": "case",
        "params": params,
        "suite": str(suite),
        "outcome": "failed" if value > 1.5 else "passed",
        "gates": [gate],
    }


def _suite(tmp_path):
    suite = tmp_path / "suites" / "release.suite.toml"
    suite.parent.mkdir()
    suite.write_text('images = 1\n\n[[codecs]]\nmodel = "mbt2018-mean"\nname = "ours"\nweights = "w.pt"\n')
    return suite


def test_the_job_summary_has_the_verdict_the_failures_and_the_matrix(tmp_path):
    results = [_test(1, 2.79, _suite(tmp_path)), _test(2, 0.5, tmp_path)]
    text = job_summary(results)
    assert text.startswith("### ❌ nicrobust verdict: FAILED\n\nFAILED: 1 failed, 1 passed")
    assert "| ours[q3-pgd-eps1] | delta_psnr | 2.79 dB | 1.5 dB | 1.29 dB | -86 % |" in text
    assert (
        "#### Gate matrix" in text
        and "| ours[q3] · d · none | 🟥 delta_psnr<br>2.79 / 1.5 dB<br>headroom -86 % | 🟩" in text
    )
    assert "🟩 delta_psnr<br>0.5 / 1.5 dB" in text


def test_annotations_name_the_suite_line_and_stop_at_ten(tmp_path):
    suite = _suite(tmp_path)
    results = [_test(i, 2.0 + i, suite) for i in range(12)]
    lines = annotations(results, str(tmp_path))
    assert len(lines) == MAX_ANNOTATIONS + 1 and lines[-1].startswith("nicrobust: 2 more failing test(s)")
    first = lines[0]  # the furthest over its limit first
    assert first.startswith(
        "::error file=suites/release.suite.toml,line=5,title=nicrobust%3A delta_psnr over its limit::"
    )
    assert first.endswith("ours[q3-pgd-eps11]: delta_psnr 13 dB > limit 1.5 dB, over by 11.5 dB")


def test_report_appends_the_summary_and_annotates_only_on_github(tmp_path):
    results = [_test(1, 2.79, _suite(tmp_path))]
    path = tmp_path / "summary.md"
    path.write_text("earlier step\n")
    printed, problems = [], []
    report(results, {"GITHUB_STEP_SUMMARY": str(path)}, printed.append, problems)
    assert path.read_text().startswith("earlier step\n### ❌") and printed == [] and problems == []
    report(results, {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}, printed.append, problems)
    assert len(printed) == 1 and printed[0].startswith("::error ")
    report(results, {"GITHUB_ACTIONS": "true"}, printed.append, problems, annotate=False)  # a shard
    assert len(printed) == 1
