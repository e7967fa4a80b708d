"""Run-level outputs, written once by the controller at the end of the session.

* ``--nicrobust-json PATH``: every test's values, the transfer matrices and the summaries;
  the matrices also as CSV/JSON/heatmap PNG files in ``PATH-stem-transfer/``;
* ``--alluredir DIR``: environment.properties, categories.json and a "run summary" result
  carrying the score card and the transfer heatmaps (see :mod:`pytest_nicrobust.allure_env`).
"""

from __future__ import annotations

import json
import os

from . import allure_env, summary, transfer_matrix


def write_run_outputs(config, results: list[dict]) -> None:
    json_path = config.getoption("nicrobust_json")
    alluredir = getattr(config.option, "allure_report_dir", None)
    if not results or not (json_path or alluredir):
        return
    seed = config.getoption("nicrobust_seed")
    matrices = transfer_matrix.assemble(results)
    files = transfer_matrix.render(matrices) if matrices else []
    cards, defenses = summary.score_card(results), summary.defense_table(results)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"seed": seed, "tests": results, "transfer": matrices,
                       "summary": {"score_card": cards, "defenses": defenses}}, f, indent=1)
        folder = os.path.splitext(json_path)[0] + "-transfer"
        if files:
            os.makedirs(folder, exist_ok=True)
        for name, body in files:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(body)
    if alluredir:
        os.makedirs(alluredir, exist_ok=True)
        allure_env.write_environment(alluredir, allure_env.environment(results, seed))
        allure_env.write_categories(alluredir)
        html = summary.summary_html(cards, defenses)
        allure_env.write_run_result(alluredir, "nicrobust run summary", html,
                                    [("score card.html", html.encode())] + files)
