"""What a suite file can make happen: it names code to import, like conftest.py, but a standard-library
or builtin callable is refused before any suite key reaches it, and the plugin starts no subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import write_thresholds

FAST = ["--nicrobust-metrics", "psnr,mse", "-p", "no:randomly", "--nicrobust-no-transfer"]


def test_os_system_and_shutil_rmtree_in_a_suite_are_refused_before_any_key_reaches_them(pytester, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    touched = tmp_path / "touched"
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "evil.suite.toml").write_text(
        textwrap.dedent(f"""
        images = 1
        crop = 64
        worst_case = false

        [[codecs]]
        model = "os:system"
        name = "sys"
        qualities = [1]
        command = "touch {touched}"

        [[codecs]]
        model = "shutil:rmtree"
        name = "rm"
        qualities = [1]
        path = "{victim}"

        [[attacks]]
        name = "noise"

        [[datasets]]
        name = "skimage-photos"
    """)
    )
    write_thresholds(pytester.path)
    result = pytester.runpytest_subprocess("suites", *FAST, timeout=300)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*codec 'os:system': system comes from Python's standard library, not a codec factory*",
            "*codec 'shutil:rmtree': rmtree comes from Python's standard library*",
        ],
        consecutive=False,
    )
    assert not touched.exists() and victim.is_dir()


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
