"""What a suite file can make happen: it names code to import, like conftest.py, but only from its own
roots or a codec package: a library callable named by class or model runs nothing (run and check-codec
alike), and the plugin starts no subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import write_thresholds

FAST = ["--nicrobust-metrics", "psnr,mse", "-p", "no:randomly", "--nicrobust-no-transfer"]


EVIL = """
images = 1
crop = 64
worst_case = false

[[codecs]]
class = "os:system"
name = "cls-sys"
weights = "random"
options = {{ command = "touch {touched}" }}

[[codecs]]
class = "shutil:rmtree"
name = "cls-rm"
weights = "random"
options = {{ path = "{victim}" }}

[[codecs]]
class = "subprocess:run"
name = "cls-run"
weights = "random"
options = {{ args = ["touch", "{touched}"] }}

[[codecs]]
model = "os:system"
name = "sys"
qualities = [1]
command = "touch {touched}"

[[codecs]]
model = "sympy:sympify"
name = "sympy"
a = "__import__('os').system('touch {touched}')"

[[attacks]]
name = "noise"

[[datasets]]
name = "skimage-photos"
"""


def test_a_suite_naming_library_callables_by_class_or_model_runs_nothing(pytester, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    touched = tmp_path / "touched"
    (pytester.path / "suites").mkdir()
    suite = pytester.path / "suites" / "evil.suite.toml"
    suite.write_text(EVIL.format(touched=touched, victim=victim))
    write_thresholds(pytester.path)
    result = pytester.runpytest_subprocess("suites", *FAST, timeout=300)
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "*class os:system*'os' is Python's standard library, not your codec's code*refused before importing it*",
            "*class shutil:rmtree*'shutil' is Python's standard library*",
            "*class subprocess:run*'subprocess' is Python's standard library*",
            "*codec 'os:system': 'os' is Python's standard library*",
            "*codec 'sympy:sympify': 'sympy' is an installed package*",
        ],
        consecutive=False,
    )
    assert not touched.exists() and victim.is_dir()
    for label in ("cls-sys", "cls-rm", "cls-run", "sys[q1]", "sympy"):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest_nicrobust", "check-codec", str(suite), "--codec", label],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2 and "not your codec's code" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert not touched.exists() and victim.is_dir(), "check-codec ran a library callable"


def test_the_plugin_starts_no_subprocess_for_its_provenance():
    """platform.platform() runs `uname -p`; the provenance reads system, release and machine in-process."""
    code = textwrap.dedent("""
        import subprocess
        def refuse(*args, **kwargs):
            raise SystemExit(f"subprocess started: {args!r}")
        subprocess.Popen.__init__ = refuse
        from pytest_nicrobust.outputs.provenance import platform_text
        print("platform:", platform_text())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("platform: "), proc.stdout + proc.stderr
