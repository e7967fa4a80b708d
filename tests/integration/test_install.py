"""A codec team's first hour, from the built wheel: install it into a fresh virtual environment, run
``init`` in an empty folder, run the starter suite with ``-n 2``, force a failure, and check that
``--lf`` reruns only that test. Once with the pytest the install files pin, once with the oldest the
package allows.

Offline: the fresh environment reuses this one's packages through a folder of links (everything but
the plugin itself, and pytest for the oldest version), then installs the wheel with ``--no-deps``.
The oldest pytest comes from the package index; without it that case is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FAST = ["-p", "no:randomly", "--nicrobust-no-transfer", "--nicrobust-metrics", "psnr,mse", "-n", "2"]
FORCED = '\n[overrides.forced]\nmatch = { objective = "bitrate" }\nbitrate_increase = 0.0\n'


def _clean_env() -> dict:
    """This environment less what points at the repository (PYTHONPATH) or steers pytest and CI."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH", "GITHUB_", "NICROBUST_"))}


def _run(cmd, cwd, env=None, timeout=900):
    return subprocess.run(cmd, cwd=cwd, env=env or _clean_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built from a copy of the package's files (no build output in the repository)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "pytest_nicrobust", src / "pytest_nicrobust", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        str(dist),
        ".",
    ]
    proc = _run(cmd, src)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (built,) = dist.glob("pytest_nicrobust-*.whl")
    return built


def test_the_wheel_brings_xdist_and_a_description_with_absolute_links(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert "pytest_nicrobust/starter/starter-suite.toml" in z.namelist()
    assert re.search(r"^Requires-Dist: pytest-xdist", meta, re.M)
    description = meta.split("\n\n", 1)[1]
    links = re.findall(r"\]\(([^)\s]+)\)", description)
    assert links and all(link.startswith("https://") for link in links), [x for x in links if "://" not in x]
    assert "make test    #" not in description  # the repository's own two commands are not a user's


def _fresh_venv(root: Path, wheel: Path, pytest_version: str | None) -> Path:
    """A new virtual environment: this one's packages through links (not the plugin; not pytest when
    another version is asked for), then the wheel."""
    venv = root / "venv"
    proc = _run([sys.executable, "-m", "venv", str(venv)], root)
    assert proc.returncode == 0, proc.stderr
    shared = root / "shared-packages"
    shared.mkdir()
    skip = re.compile(
        r"(pytest_nicrobust|__editable__|.*\.pth$|pip$|pip-)"
        + (r"|pytest$|_pytest$|py\.py$|pytest-\d" if pytest_version else "")
    )
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not skip.match(entry.name):
            (shared / entry.name).symlink_to(entry)
    site = Path(
        _run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root
        ).stdout.strip()
    )
    (site / "shared-packages.pth").write_text(str(shared) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps"]
    if pytest_version:
        proc = _run(pip + [f"pytest=={pytest_version}"], root, timeout=300)
        if proc.returncode != 0:
            pytest.skip(f"pytest=={pytest_version} could not be installed here: {proc.stderr.strip()[-300:]}")
    proc = _run(pip + ["--no-index", str(wheel)], root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return venv


def _oldest_pytest() -> str:
    meta = (ROOT / "pyproject.toml").read_text()
    return re.search(r'"pytest>=([\d.]+)"', meta).group(1)


@pytest.mark.parametrize("pytest_version", [None, _oldest_pytest()], ids=["pinned-pytest", "oldest-pytest"])
def test_init_then_the_starter_suite_then_last_failed(wheel, tmp_path, pytest_version):
    venv = _fresh_venv(tmp_path, wheel, pytest_version)
    python = str(venv / "bin" / "python")
    env = _clean_env()
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env["PATH"]])
    project = tmp_path / "project"
    project.mkdir()
    where = _run(
        [python, "-c", "import pytest, pytest_nicrobust; print(pytest.__version__, pytest_nicrobust.__file__)"],
        project,
        env,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    version, location = where.stdout.split()
    assert location.startswith(str(venv)), "the plugin comes from the wheel, not the repository"
    assert Version(version) == Version(pytest_version or pytest.__version__)

    init = _run([python, "-m", "pytest_nicrobust", "init"], project, env)
    assert init.returncode == 0, init.stderr
    assert (project / "suites" / "starter.suite.toml").exists() and (project / "thresholds.toml").exists()

    suite = "suites/starter.suite.toml"
    first = _run([python, "-m", "pytest", suite, *FAST, "--nicrobust-json=first.json"], project, env)
    assert "nicrobust verdict: " in first.stdout, first.stdout[-3000:] + first.stderr[-3000:]
    ran = json.loads((project / "first.json").read_text())["tests"]
    assert len(ran) == 3 and {t["worker"] for t in ran} <= {"gw0", "gw1"}  # two cases and the worst case, on xdist

    with open(project / "thresholds.toml", "a") as f:  # no bitrate increase allowed: the bitrate case fails
        f.write(FORCED)
    forced = _run([python, "-m", "pytest", suite, *FAST], project, env)
    assert forced.returncode == 1, forced.stdout[-3000:]
    failed = [line.split()[1] for line in forced.stdout.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1 and "-bitrate-" in failed[0]

    again = _run([python, "-m", "pytest", suite, "--lf", *FAST, "--nicrobust-json=lf.json"], project, env)
    rerun = [t["id"] for t in json.loads((project / "lf.json").read_text())["tests"]]
    assert rerun == failed, again.stdout[-3000:]
