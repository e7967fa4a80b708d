"""The plugin module must not import torch: `pytest --help` and unrelated test runs stay fast."""

import subprocess
import sys


def test_plugin_import_does_not_import_torch():
    code = ("import sys, pytest_nicrobust.plugin, pytest_nicrobust.suite, pytest_nicrobust.thresholds; "
            "heavy = sorted(m for m in ('torch', 'compressai', 'numpy', 'PIL') if m in sys.modules); "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"plugin import pulled in {proc.stdout.strip()} {proc.stderr[-500:]}"
