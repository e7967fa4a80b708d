"""Pure verdict logic: limits (:mod:`.gates`) and release-over-release comparison (:mod:`.baseline`).

No files written, no pytest, no Allure: the run's verdict step (:mod:`pytest_nicrobust.run.verdict`)
and the outputs call these."""
