"""``python -m pytest_nicrobust COMMAND``: tools that run outside a pytest session.

* ``merge SHARD.json ... -o results.json [--alluredir DIR]``: join CI shards into one run
  (:mod:`pytest_nicrobust.outputs.merge`);
* ``check-codec SPEC``: check a codec against the contract before trusting its numbers
  (:mod:`pytest_nicrobust.codecs.conformance`).
"""

from __future__ import annotations

import sys

COMMANDS = {
    "merge": "pytest_nicrobust.outputs.merge",
    "check-codec": "pytest_nicrobust.codecs.conformance",
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
