"""What people and CI read. Workers import only :mod:`.test_page` (a test's Allure page); the run-level
outputs below are written by the controller (or the only process), never by xdist workers, through
:mod:`.writer`.

* ``--nicrobust-json PATH``: provenance and every test's values first, written atomically: a
  skeleton (``"complete": false``, provenance, no tests) when the session starts, rewritten as each
  test's record arrives (and with ``"running"`` naming the test under way, without xdist), so a
  run killed in any way keeps every test that finished; then the summaries, transfer matrices and comparison. The matrices also go as CSV/JSON (and
  heatmap PNG, when matplotlib is installed) into ``PATH-stem-transfer/``.
* ``--alluredir DIR``: environment.properties, executor.json, categories.json and a "run summary"
  result (see :mod:`.allure_run`); a shard writes only categories.json (the merge writes the rest).
* the terminal summary (see :mod:`.terminal`).

Only the JSON is essential: every extra is isolated, and its failure is a warning.
"""
