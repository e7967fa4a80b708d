"""``python -m pytest_nicrobust init [FOLDER]``: a starter suite and thresholds in a project.

Writes ``suites/starter.suite.toml`` (a codec shipped with the plugin against PGD on two photos
bundled with scikit-image: it runs offline, with the three ways to put your own codec in its
comments) and ``thresholds.toml`` (which extends the plugin's shipped limits), then prints the next
commands. It never overwrites: when either file exists it writes nothing and says which.

Exit status: 0 when both files were written, 2 when nothing was (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources

FILES = (("suites/starter.suite.toml", "starter-suite.toml"), ("thresholds.toml", "starter-thresholds.toml"))

NEXT = """\
next:
  pytest {suite} -n auto --nicrobust-json results.json --alluredir allure-results
      runs it (the verdict line comes first and last); then put your codec in its [[codecs]] table
  python -m pytest_nicrobust calibrate results.json -o thresholds.calibrated.toml
      limits from your first run: the worst mean of each gate plus a margin, to review
  CI: docs/ci.md (the job summary, annotations, JUnit, one report file)"""


def template(name: str) -> str:
    return (resources.files("pytest_nicrobust") / "starter" / name).read_text()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pytest_nicrobust init",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("folder", nargs="?", default=".", help="the project's root (default: here)")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.folder):
        print(f"init: {args.folder} is not a folder", file=sys.stderr)
        return 2
    targets = [(os.path.join(args.folder, path), name) for path, name in FILES]
    there = [path for path, _ in targets if os.path.lexists(path)]
    if there:
        print(f"init: {', '.join(there)} exists; init writes only new files and wrote nothing", file=sys.stderr)
        return 2
    for path, name in targets:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(template(name))
        print(f"init: wrote {path}")
    print(NEXT.format(suite=os.path.relpath(targets[0][0])))
    return 0
