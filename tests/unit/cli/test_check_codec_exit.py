"""``check-codec`` cannot be fooled by an exit: SystemExit in a factory or a codec is a FAIL line
and a non-zero exit status (it was exit 0, no check run); ``os._exit`` and a native crash end the
check's child process only, and are a FAIL line naming where they happened and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CODEC = textwrap.dedent("""
    import os
    import signal
    import sys
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.codecs.base import Codec


    def exits(**kwargs):
        sys.exit(0)


    class Quits(Codec):
        def __init__(self, inner, where):
            super().__init__(inner.info, inner.device)
            self.inner, self.where = inner, where

        def _forward_padded(self, x, proxy, generator):
            if self.where == "forward":
                sys.exit(0)
            return self.inner._forward_padded(x, proxy, generator)

        def _roundtrip_padded(self, x):
            if self.where == "roundtrip":
                raise GeneratorExit
            return self.inner._roundtrip_padded(x)


    def quits_forward(**kwargs):
        return Quits(load_codec("bmshj2018-factorized", "random", 1), "forward")


    def quits_roundtrip(**kwargs):
        return Quits(load_codec("bmshj2018-factorized", "random", 1), "roundtrip")


    def hard_exit(**kwargs):
        os._exit(0)


    class Dies(Quits):
        def _roundtrip_padded(self, x):
            if self.where == "os._exit":
                os._exit(0)
            os.kill(os.getpid(), signal.SIGSEGV)  # a native crash


    def exits_in_roundtrip(**kwargs):
        return Dies(load_codec("bmshj2018-factorized", "random", 1), "os._exit")


    def crashes_in_roundtrip(**kwargs):
        return Dies(load_codec("bmshj2018-factorized", "random", 1), "crash")
""")


def _check(tmp_path, spec):
    (tmp_path / "quitting.py").write_text(CODEC)
    return subprocess.run(
        [sys.executable, "-m", "pytest_nicrobust", "check-codec", spec],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_factory_that_calls_sys_exit_is_a_fail_line_and_exit_2(tmp_path):
    proc = _check(tmp_path, "quitting:exits@1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "FAIL  load: loading quitting:exits@1 raised SystemExit: 0" in proc.stdout


@pytest.mark.parametrize(
    "spec, raised", [("quitting:quits_forward@1", "SystemExit"), ("quitting:quits_roundtrip@1", "GeneratorExit")]
)
def test_a_codec_that_exits_fails_its_properties(tmp_path, spec, raised):
    proc = _check(tmp_path, spec)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"raised {raised}" in proc.stdout and "properties hold; failed:" in proc.stdout


def test_a_factory_that_calls_os_exit_is_a_fail_line_and_exit_2(tmp_path):
    proc = _check(tmp_path, "quitting:hard_exit@1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "FAIL  load: the check's process exited with status 0 (os._exit?) while it ran" in proc.stdout
    assert "could not be loaded" in proc.stderr


@pytest.mark.parametrize(
    "spec, how",
    [
        ("quitting:exits_in_roundtrip@1", "exited with status 0 (os._exit?)"),
        ("quitting:crashes_in_roundtrip@1", "killed by SIGSEGV"),
    ],
)
def test_a_codec_that_ends_the_process_fails_with_the_property_it_was_in(tmp_path, spec, how):
    proc = _check(tmp_path, spec)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert (
        f"FAIL  roundtrip: shapes and bytes per image: the check's process {how} while it ran (the codec ended it)"
        in lines
    )
    assert lines[-1].startswith("5 of 14 properties hold; failed: roundtrip: shapes and bytes per image; not run: ")
