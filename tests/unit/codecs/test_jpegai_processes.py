"""The JPEG AI guard on process creation, without a reference tree (CI).

A fake tree's ``src`` package (written here) tries every way of starting a process while its code
runs inside :meth:`TreeNamespace.active`, directly and through a library; each would create a
marker file. A library that starts one while it is imported is let through. The check runs in a
child Python, so that a route the guard missed (``os.execv`` replaces the process) cannot take the
test session with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")

SPAWNER = """
import os, pty, subprocess, sys

def run(route, marker):
    shell = ["/bin/sh", "-c", f"touch {marker}"]
    if route == "subprocess.run":
        subprocess.run(shell, check=False)
    elif route == "os.popen":
        os.popen(f"touch {marker}").read()
    elif route == "os.system":
        os.system(f"touch {marker}")
    elif route == "os.execv":
        os.execv(shell[0], shell)
    elif route == "os.posix_spawn":
        os.waitpid(os.posix_spawn(shell[0], shell, dict(os.environ)), 0)
    elif route == "os.spawnv":
        os.spawnv(os.P_WAIT, shell[0], shell)
    elif route == "os.fork":
        pid = os.fork()
        if pid == 0:
            open(marker, "w").close()
            os._exit(0)
        os.waitpid(pid, 0)
    elif route == "pty.spawn":
        pty.spawn(shell)
    elif route == "library at run time":  # a library function the tree calls starts it
        import spawning_library
        spawning_library.touch(marker)
    elif route == "library on import":  # a library starts one while it is imported (numpy.testing's lscpu)
        os.environ["NICROBUST_TEST_MARKER"] = marker
        import importing_library
    elif route == "swallowed":  # the tree catches the refusal and carries on
        try:
            subprocess.run(shell, check=False)
        except Exception:
            pass
"""

DRIVER = """
import json, os, subprocess, sys
from pytest_nicrobust import CodecError
from pytest_nicrobust.codecs.kinds.jpegai.isolation import TreeNamespace

TreeNamespace._load_extensions = lambda self: None  # the fake tree has no native extensions
root, work, routes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tree = TreeNamespace(root, work)
found = {}
for route in routes:
    marker = os.path.join(work, route + ".ran")
    try:
        with tree.active("a test"):
            tree.module("src.spawner").run(route, marker)
        said = None
    except CodecError as exc:
        said = str(exc)
    found[route] = {"said": said, "ran": os.path.exists(marker)}
outside = os.path.join(work, "outside.ran")
subprocess.run(["/bin/sh", "-c", f"touch {outside}"], check=True)  # no tree code running: allowed
found["outside"] = {"said": None, "ran": os.path.exists(outside)}
print(json.dumps(found))
"""

ROUTES = [
    "subprocess.run",
    "os.popen",
    "os.system",
    "os.execv",
    "os.posix_spawn",
    "os.spawnv",
    "os.fork",
    "pty.spawn",
    "library at run time",
]
LIBRARIES = {
    "spawning_library.py": "import subprocess\n\ndef touch(marker):\n    subprocess.run(['touch', marker])\n",
    "importing_library.py": "import os, subprocess\nsubprocess.run(['touch', os.environ['NICROBUST_TEST_MARKER']])\n",
}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process creation")
def test_no_process_starts_while_tree_code_runs(tmp_path):
    root, work = tmp_path / "tree", tmp_path / "work"
    (root / "src").mkdir(parents=True)
    work.mkdir()
    (root / "src" / "__init__.py").write_text("")
    (root / "src" / "spawner.py").write_text(textwrap.dedent(SPAWNER))
    (tmp_path / "lib").mkdir()
    for name, code in LIBRARIES.items():  # libraries outside the tree
        (tmp_path / "lib" / name).write_text(code)
    routes = ROUTES + ["library on import", "swallowed"]
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(root), str(work), json.dumps(routes)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "lib"), *sys.path])},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for route in ROUTES:
        assert not found[route]["ran"], f"{route} started a process"
        assert "tried to start a process" in (found[route]["said"] or ""), (route, found[route])
    assert not found["swallowed"]["ran"] and "tried to start a process during a test" in found["swallowed"]["said"]
    assert found["library on import"] == {"said": None, "ran": True}  # a library's import-time code is its own
    assert found["outside"]["ran"]  # the guard is off outside tree calls
