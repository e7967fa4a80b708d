"""The errors of the files users write (a suite or a thresholds file that cannot be used), and
reading such a file: each message names the file (and the key); the plugin prints it as one
line, never a traceback.
"""

from __future__ import annotations

import tomllib

from .. import NicrobustError


class SuiteError(NicrobustError):
    category = "config error"


class ThresholdsError(NicrobustError):
    category = "config error"


def read_toml(file: str, display: str, error: type[NicrobustError]) -> dict:
    """The TOML document in ``file``; ``error(display: what is wrong)`` when it cannot be read or parsed."""
    try:
        with open(file, "rb") as f:
            return tomllib.load(f)
    except UnicodeDecodeError as exc:
        raise error(f"{display}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{display}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise error(f"{display}: cannot read: {exc.strerror}") from None
