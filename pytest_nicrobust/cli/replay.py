"""``python -m pytest_nicrobust replay SUITE::TEST STREAM``: decode a saved stream as its bitstream test did.

    python -m pytest_nicrobust replay 'suites/default.suite.toml::bmshj2018-hyperprior[q3-bitstream]' \\
        results-bitstreams/bmshj2018-hyperprior_q3-bitstream_-crash-0123456789abcdef.bin --max-pixels 65536 --time-limit 5

The failing test's record and terminal line give this command (docs/bitstreams.md). The test's codec
is loaded in a child process, as in the test, and the stream is decoded three times: once, again in
the same process, and in a fresh one. One line each says what came back (an image, an exception, a
hang, a crash), then a verdict line. Exit status: 1 when a property fails (hang, crash, bad output,
nondeterministic), 0 when the decoder handled the stream (a finite image within --max-pixels, or a
clean exception), 2 when the test, its codec or the stream cannot be found or loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from .. import NicrobustError


def find_test(spec: str):
    """The :class:`~pytest_nicrobust.config.cases.BitstreamCase` a ``SUITE::TEST`` id names."""
    from ..config.suite import parse_suite

    path, sep, name = spec.partition("::")
    if not sep or not os.path.isfile(path):
        raise ValueError(f"{spec!r}: want SUITE::TEST, the bitstream test's id (its suite file must exist here)")
    tests = {c.name: c for c in parse_suite(path).bitstreams}
    if name not in tests:
        known = ", ".join(tests) or "none: the suite has no [bitstreams] table"
        raise ValueError(f"{path} has no bitstream test {name!r}; it has {known}")
    return tests[name]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pytest_nicrobust replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("test", help="the bitstream test's id, SUITE::TEST (as its record and terminal line name it)")
    ap.add_argument("stream", help="the saved stream (a .bin file beside the results JSON, or from Allure)")
    ap.add_argument("--max-pixels", type=int, default=1 << 26, help="the largest image the decoder may return")
    ap.add_argument("--time-limit", type=float, default=5.0, help="seconds a decode may take (default 5)")
    args = ap.parse_args(argv)
    try:
        case = find_test(args.test)
        with open(args.stream, "rb") as f:
            stream = f.read()
    except (OSError, ValueError, NicrobustError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    return replay(case, stream, args.max_pixels, args.time_limit)


def replay(case, stream: bytes, max_pixels: int, time_limit: float) -> int:
    from ..child import Child
    from ..run.bitstreams import codec_spec
    from ..run.decoder_child import Decoder

    print(f"replay: {case.name}: a {len(stream)}-byte stream (sha256 {hashlib.sha256(stream).hexdigest()[:16]})")
    with Child("replay") as child:
        decoder = Decoder(child, "codec", codec_spec(case, (os.getcwd(),)), time_limit, max_pixels)
        try:
            decoder.prepare()
        except NicrobustError as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2
        outcomes = []
        for what, fresh in (("decoded", False), ("again in the same process", False), ("in a fresh process", True)):
            outcome = decoder.decode(stream, fresh=fresh)
            outcomes.append(outcome)
            said = outcome.detail if outcome.status != "image" else f"{outcome.detail} (sha256 {outcome.digest[:16]})"
            print(f"  {what}: {outcome.status}: {said}")
            if outcome.status in ("hang", "crash"):
                break
    names = {"hang": "hang", "crash": "crash", "bad": "bad output"}
    failed = [names[o.status] for o in outcomes if o.status in names]
    if not failed and len({(o.status, o.digest) for o in outcomes}) > 1:
        failed = ["nondeterministic"]
    print(f"verdict: {failed[0] if failed else 'handled (an image or a clean exception, the same each time)'}")
    return 1 if failed else 0
