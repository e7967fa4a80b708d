"""A worst case that runs out of time while measuring a member again names the member, and the
worker it waited for (it named neither)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pytest_nicrobust.run import worst_case
from pytest_nicrobust.timeguard import TimeLimitExceeded, limit_message

WORST = "suites/s.toml::tiny[q1-worst-case-photos-none]"
MEMBER = "tiny[q1-pgd-eps7-recon_error-photos-none]"


def test_the_time_limit_names_the_member_and_whom_it_waited_for(monkeypatch):
    member = SimpleNamespace(
        suite="suites/s.toml", name=MEMBER, parameters={"attack": "pgd[eps7]", "objective": "recon_error"}
    )
    wc = SimpleNamespace(parameters={}, members=[member], dataset=SimpleNamespace(crop=64), codec=None, name=WORST)
    cache = SimpleNamespace(waiting=lambda: [f"gw1 (suites/s.toml::{MEMBER})"])
    ctx = SimpleNamespace(run_seed=0, measured={}, cache=cache)

    def hung(*args, **kwargs):
        raise TimeLimitExceeded(limit_message(WORST, 20))

    monkeypatch.setattr(worst_case, "load_subject", lambda *args: (None, []))
    monkeypatch.setattr(worst_case, "case_seeds", lambda *args: (1, 2))
    monkeypatch.setattr(worst_case, "measure_case", hung)
    with pytest.raises(TimeLimitExceeded) as info:
        worst_case.run_worst_case(wc, ctx, {})
    assert str(info.value) == (
        f"{WORST} ran past its time limit of 20 s (--nicrobust-timeout) while measuring its member {MEMBER} again, "
        f"waiting for the x' that gw1 (suites/s.toml::{MEMBER}) is making"
    )
