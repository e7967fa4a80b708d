"""One test on a worker: load, attack, encode, measure, conclude (imports torch on first use).

:mod:`.dispatch` picks the runner of a test's kind (:mod:`.case`, :mod:`.worst_case`,
:mod:`.transfer`); they share :mod:`.measure` (x' from :mod:`.advcache` or the attack, coding,
metrics), :mod:`.context` (per-worker state) and :mod:`.conclude` (gates meet pytest and Allure).
:mod:`.devices` is the device and thread policy (pure, also read on the controller).
"""
