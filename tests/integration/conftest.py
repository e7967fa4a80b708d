"""Every results JSON an integration test writes is checked against the schema the package ships,
failing runs included: after each test, every results file under this session's temporary folders
not checked before (one that begins as a results JSON of the plugin does) must match
``results.schema.json``; one a module-scoped fixture wrote is checked after the first test that
used it. A test that writes a broken one on purpose says so with the marker ``writes_invalid_results``."""

from __future__ import annotations

import json
import os

import pytest

from pytest_nicrobust.files import RESULTS_START
from pytest_nicrobust.outputs.schema import first_problem

_CHECKED: dict[str, float] = {}  # path -> the modification time it was checked at


def _new_results_files(base):
    for folder, _, names in os.walk(base):
        for name in names:
            path = os.path.join(folder, name)
            if not name.endswith(".json"):
                continue
            try:
                mtime = os.stat(path).st_mtime
                if _CHECKED.get(path) == mtime:
                    continue
                _CHECKED[path] = mtime
                with open(path, "rb") as f:
                    if RESULTS_START.match(f.read(64)):
                        yield path
            except OSError:
                continue


@pytest.fixture(autouse=True)
def results_match_the_schema(request, tmp_path_factory):
    yield
    found = list(_new_results_files(tmp_path_factory.getbasetemp()))
    if request.node.get_closest_marker("writes_invalid_results"):
        return
    for path in found:
        with open(path) as f:
            problem = first_problem(json.load(f))
        assert problem is None, f"{path} does not match results.schema.json: {problem}"
