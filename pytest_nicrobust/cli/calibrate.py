"""``python -m pytest_nicrobust calibrate results.json [-o thresholds.toml] [--margin 20%]``.

Turns a first run into limits: for every gate the run applied (``delta_psnr``, ``bitrate_increase``,
``transfer_delta_psnr``, ...), the worst mean any test reached, plus a stated margin, rounded up to
three significant digits. The file names the results JSON it came from (path, SHA-256, start time,
seed) and, per limit, the test that reached the worst, so a reviewer can see where each number came
from. Limits on the cases' metrics go to ``[defaults]``; the transfer cells' to
``[overrides.transfer]``, which replaces the shipped table of that name (docs/thresholds.md).

A margin is relative (``20%``, the default; ``0`` for none). A worst mean of 0 or below (the attacks
did not hurt) gives a limit of 0. The output file must not exist: calibrate never overwrites one.

Exit status: 0 when the file was written, 2 on bad input (one line on stderr; nothing is written):
not a results JSON, a run that did not finish, a gate whose mean is NaN, no gate at all.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from ..files import sha256_of
from ..metrics.registry import unit


class CalibrateError(Exception):
    pass


def parse_margin(text: str) -> float:
    """``20%``, ``20`` (both 20 %) or ``0``: the share added to the worst mean."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 20%, got {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a percentage >= 0, got {text!r}")
    return value


def round_up(value: float) -> float:
    """``value`` rounded up to three significant digits (0 for 0 or less): a limit never below the worst."""
    if value <= 0:
        return 0.0
    digits = 2 - math.floor(math.log10(value))
    scaled = math.ceil(round(value * 10.0**digits, 9))
    return float(f"{scaled / 10.0**digits:.{max(digits, 0)}f}")


def read_run(path: str) -> dict:
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise CalibrateError(f"{path}: not a results JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list) or "provenance" not in doc:
        raise CalibrateError(f"{path}: not a --nicrobust-json file of this plugin (no tests or provenance)")
    if doc.get("complete") is not True:
        why = (doc.get("stopped") or {}).get("reason", "it was killed or is still running")
        raise CalibrateError(f'{path}: the run did not finish ("complete": false: {why}); calibrate from a whole run')
    return doc


def worst_means(path: str, tests: list) -> dict[str, tuple[float, str]]:
    """{gate metric: (worst mean, test name)} over every limit gate the run applied (not regressions)."""
    worst: dict[str, tuple[float, str]] = {}
    for test in tests:
        for gate in (test.get("gates") or []) if isinstance(test, dict) else []:
            if gate.get("kind", "limit") != "limit":
                continue
            metric, value = gate["metric"], gate["value"]
            if not isinstance(value, (int, float)) or math.isnan(value):
                raise CalibrateError(f"{path}: {test.get('name')}: {metric} is {value!r}; a limit cannot come from it")
            if metric not in worst or value > worst[metric][0]:
                worst[metric] = (float(value), test.get("name", "?"))
    if not worst:
        raise CalibrateError(f"{path}: no test applied a limit (every test errored or had none); nothing to calibrate")
    return worst


def _line(metric: str, worst: float, test: str, margin: float) -> str:
    u = unit(metric)
    return f"{metric} = {round_up(worst * (1 + margin)):g}  # {u + '; ' if u else ''}worst {worst:.4g} in {test}"


def thresholds_text(path: str, doc: dict, margin: float) -> str:
    """The thresholds file: a header naming the run, [defaults] and [overrides.transfer]."""
    worst = worst_means(path, doc["tests"])
    prov = doc["provenance"]
    suites = ", ".join(sorted(os.path.basename(s) for s in prov.get("suites") or {})) or "unknown"
    head = [
        "# Limits calibrated by `python -m pytest_nicrobust calibrate` from",
        f"#   {os.path.abspath(path)}",
        f"#   (sha256 {sha256_of(path)}; run started {prov.get('timestamp', '?')}, seed {prov.get('seed', '?')},",
        f"#   {len(doc['tests'])} tests; suites: {suites})",
        f"# Each limit is the worst mean of its gate in that run plus a margin of {100 * margin:g} %, rounded up to",
        "# three significant digits; the comment names the test that reached the worst.",
        "# The plugin's shipped limits still apply where this file says nothing (docs/thresholds.md);",
        "# `extends = false` at the top would drop them.",
        "",
    ]
    cases = [m for m in sorted(worst) if not m.startswith("transfer_")]
    transfer = [m for m in sorted(worst) if m.startswith("transfer_")]
    body = ["[defaults]"] + [_line(m, *worst[m], margin) for m in cases] if cases else []
    if transfer:
        body += ([""] if body else []) + ["[overrides.transfer]", 'match = { mode = "transfer" }']
        body += [_line(m, *worst[m], margin) for m in transfer]
    return "\n".join(head + body) + "\n"


def write_new(path: str, text: str) -> None:
    """Create ``path``; refuse one that exists (or a link planted there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pytest_nicrobust calibrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("results", metavar="RESULTS.json", help="a whole run's --nicrobust-json")
    ap.add_argument(
        "-o", "--output", default="thresholds.toml", help="the thresholds file to write (default %(default)s)"
    )
    ap.add_argument(
        "--margin", type=parse_margin, default=0.2, help="added to each worst mean, e.g. 20%% (the default) or 0"
    )
    args = ap.parse_args(argv)
    try:
        text = thresholds_text(args.results, read_run(args.results), args.margin)
        if os.path.lexists(args.output):
            raise CalibrateError(f"{args.output} exists; calibrate never overwrites a file: pass -o NEW.toml")
        write_new(args.output, text)
    except (CalibrateError, OSError) as exc:
        print(f"calibrate: {exc}", file=sys.stderr)
        return 2
    count = sum(1 for line in text.splitlines() if line and not line.startswith(("#", "[", "match")))
    print(f"calibrate: wrote {args.output}: {count} limit(s) from {args.results} (margin {100 * args.margin:g} %)")
    return 0
