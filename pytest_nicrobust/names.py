"""Names: how codecs, tests, attacks and modes are spelled in ids, reports and thresholds.

Ground floor (no imports from the package): every room that prints or matches a name uses
these, so a label is spelled the same in the test id, the JSON, Allure, the terminal and a
thresholds ``match`` pattern.
"""

from __future__ import annotations

import os
from typing import Any

WORST_CASE = "worst-case"  # the attack label of the worst-case items
UNDEFENDED = "undefended"
# mode: how x' met the codec. A defended case gates non-adaptive and adaptive; transfer cells gate transfer.
MODES = (UNDEFENDED, "non-adaptive", "adaptive", "transfer")
CLASSICAL = ("jpeg", "webp", "jpeg2000")  # Pillow codecs, transfer targets (codecs/builtin/classical.py)
BITSTREAM = "bitstream"  # the kind and attack label of a decoder's test on mutated streams (docs/bitstreams.md)


def quality_tag(quality: int | str | None) -> str:
    """How a quality shows in ids: 3 -> "q3", "b0.075" -> "b0.075" (as given), None -> ""."""
    if quality is None:
        return ""
    return f"q{quality}" if isinstance(quality, int) else str(quality)


def codec_label(label: str, bitrate: str = "") -> str:
    """A codec with its bitrate tag, ``bmshj2018-hyperprior[q3]``: what reports and thresholds show."""
    return f"{label}[{bitrate}]" if bitrate else label


def codec_of(params: dict[str, Any]) -> str:
    """:func:`codec_label` of a test's parameters (``codec`` and ``bitrate``)."""
    return codec_label(params["codec"], params.get("bitrate") or "")


def case_id(label: str, quality: int | str | None, rest: str) -> str:
    """``label[q3-rest]``: the pytest idiom of a name with its parameters in one trailing bracket
    (pytest reads an id containing ``[`` as ending in ``]``), using only characters ``-k`` accepts."""
    tag = quality_tag(quality)
    return f"{label}[{tag + '-' if tag else ''}{rest}]"


def id_token(display: str) -> str:
    """A codec display name inside an id: ``tiny[q2]`` -> ``tiny:q2``."""
    return display.replace("[", ":").replace("]", "")


def attack_label(params: dict[str, Any]) -> str:
    """How reports name a test's attack: "pgd[eps7]:recon_error", "pgd[eps7]:recon_error swept over eps" (a
    budget sweep), or "noise[eps7]" and "worst-case" alone."""
    if params["attack"] == WORST_CASE or params["objective"] in ("none", "all"):
        return str(params["attack"])
    sweep = f" swept over {params['sweep']}" if params.get("sweep") else ""  # a budget sweep (a curve test)
    return f"{params['attack']}:{params['objective']}{sweep}"


def mode_suffix(mode: str) -> str:
    """`` [adaptive]`` after a metric name; nothing for the undefended mode (or none)."""
    return f" [{mode}]" if mode not in ("", UNDEFENDED) else ""


def replay_command(test_id: str, stream: str, max_pixels: int, time_limit: float) -> str:
    """The one line that decodes a saved stream again as its bitstream test did (``replay``)."""
    return (
        f"python -m pytest_nicrobust replay '{test_id}' {stream} --max-pixels {max_pixels} --time-limit {time_limit:g}"
    )


def bitstream_file(json_path: str, test_name: str, prop: str, sha256: str) -> str:
    """Where a bitstream test's finding is saved: beside the results JSON, in ``<stem>-bitstreams/``."""
    folder = os.path.splitext(json_path)[0]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{test_name}-{prop}")
    return f"{folder}-bitstreams/{safe}-{sha256[:16]}.bin"
