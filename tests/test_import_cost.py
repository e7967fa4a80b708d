"""The controller's modules must not import torch: `pytest --help`, collection and unrelated test
runs stay fast, and every registry can be read without it."""

import pathlib
import subprocess
import sys

import pytest

TORCH_FREE = [
    "pytest_nicrobust.plugin",
    "pytest_nicrobust.options",
    "pytest_nicrobust.session",
    "pytest_nicrobust.collection",
    "pytest_nicrobust.scheduling",
    "pytest_nicrobust.config.suite",
    "pytest_nicrobust.config.cases",
    "pytest_nicrobust.config.thresholds",
    "pytest_nicrobust.config.regression",
    "pytest_nicrobust.config.shards",
    "pytest_nicrobust.names",
    "pytest_nicrobust.record",
    "pytest_nicrobust.files",
    "pytest_nicrobust.verdict.gates",
    "pytest_nicrobust.verdict.baseline",
    "pytest_nicrobust.attacks",
    "pytest_nicrobust.codecs",
    "pytest_nicrobust.codecs.registry",
    "pytest_nicrobust.defenses",
    "pytest_nicrobust.metrics",
    "pytest_nicrobust.run.devices",
    "pytest_nicrobust.cli",
    "pytest_nicrobust.codecs.kinds.public_trees",
]
# Every codec kind's table half is read at collection: found by its path, not listed by hand.
KINDS = pathlib.Path(__file__).resolve().parents[1] / "pytest_nicrobust" / "codecs" / "kinds"
TORCH_FREE += sorted(f"pytest_nicrobust.codecs.kinds.{p.parent.name}.table" for p in KINDS.glob("*/table.py"))
HEAVY = ("torch", "compressai", "numpy", "PIL")


def _heavy_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-800:]
    return [m for m in proc.stdout.strip().split(",") if m]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_imports_without_torch(module):
    assert _heavy_after(f"import {module}") == [], f"importing {module} pulled in torch or another heavy module"


def test_registries_answer_without_torch():
    code = (
        "from pytest_nicrobust.attacks import ATTACKS; from pytest_nicrobust.defenses import DEFENSES; "
        "from pytest_nicrobust.metrics import METRICS, GATES; from pytest_nicrobust.codecs import known_models; "
        "assert ATTACKS and DEFENSES and METRICS and GATES and known_models()"
    )
    assert _heavy_after(code) == []


def test_the_probe_sees_torch():
    """The check itself: a module that does import torch is reported."""
    assert "torch" in _heavy_after("import pytest_nicrobust.metrics.full_reference")


def test_workers_load_only_what_workers_run():
    """A worker runs tests (run/) and writes no run-level output: the writer, the summaries, the
    terminal and Allure's run files stay on the controller."""
    controller = ("writer", "summary", "terminal", "allure_run", "transfer_matrix", "provenance")
    code = (
        "import sys; import pytest_nicrobust.run.case, pytest_nicrobust.run.worst_case, pytest_nicrobust.run.transfer; "
        f"print(','.join(m for m in {controller!r} if 'pytest_nicrobust.outputs.' + m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert proc.stdout.strip() == "", f"a worker's modules import the controller's outputs: {proc.stdout.strip()}"
