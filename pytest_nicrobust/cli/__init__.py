"""``python -m pytest_nicrobust COMMAND``: the tools that run outside a pytest session.

Each command is a module with ``main(argv) -> exit status``, imported only when it is named.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "init": ("pytest_nicrobust.cli.init", "write a starter suite and thresholds into a project (never overwrites)"),
    "calibrate": (
        "pytest_nicrobust.cli.calibrate",
        "write limits from a first run: the worst mean per gate plus a margin",
    ),
    "merge": ("pytest_nicrobust.cli.merge", "join the JSON of CI shards (--nicrobust-shard K/N) into one run"),
    "check-codec": (
        "pytest_nicrobust.cli.check_codec",
        "check a codec against the contract before trusting its numbers",
    ),
    "replay": ("pytest_nicrobust.cli.replay", "decode a bitstream test's saved stream again, as the test did"),
}


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    ap = argparse.ArgumentParser(
        prog="python -m pytest_nicrobust",
        description="Tools of pytest-nicrobust that run outside a pytest session. "
        "The robustness tests themselves run under pytest: pytest suites -n auto.",
        epilog="Run 'python -m pytest_nicrobust COMMAND --help' for a command's options.",
    )
    ap.add_argument("--version", action="version", version=f"pytest-nicrobust {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)
    return ap


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    ap = _parser()
    if not argv:
        ap.print_help(sys.stderr)
        return 2
    ap.parse_args(argv)  # --help, --version, or an unknown command: argparse answers and exits
    return 2
