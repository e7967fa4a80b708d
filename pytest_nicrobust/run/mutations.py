"""Mutated streams built by Hypothesis from a codec's real ones, and the search for what breaks its decoder.

Torch-free: the decoder is a callable (stream -> :class:`Outcome`; :mod:`.decoder_child` runs it in
a child process). What a test tries, in Hypothesis's terms (docs/bitstreams.md):

* **the strategy** (:func:`mutated_streams`): one of the real streams, then one to three mutations:
  empty; truncated anywhere; bits flipped (positions biased to the first 32 bytes, where headers
  are); a huge value written over 2 or 4 bytes (a declared size); bytes deleted or inserted; a splice
  of two real streams; another codec's stream (foreign); random bytes; and, for a stream in the
  plugin's container (:mod:`pytest_nicrobust.codecs.container`), any of these applied to one of the
  strings inside it, the container packed again around it, so that the coder itself (not only the
  container's checks) faces truncated and corrupted strings. Hypothesis shrinks towards the first
  choices: fewer mutations, an empty or shorter stream, earlier bytes.
* **the properties**: a decode returns within its time limit (else ``hang``), its process survives
  (else ``crash``), and it gives a clean exception or a finite (3, H, W) image within ``max_pixels``
  (else ``bad output``). A property that fails is shrunk to a minimal stream; then the search goes
  on in a new round with that property set aside, so that one finding cannot hide another, until
  the test's examples are spent (:func:`search`).
* **the cost is bounded**: each stream's outcome is kept by its SHA-256, so a stream Hypothesis
  tries again (replays, shrinking) costs nothing, and once the test's wall ``budget`` is spent no new
  stream is decoded (it counts as passing), which ends shrinking.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..codecs import container

HUGE = (b"\xff\xff", b"\x7f\xff", b"\x80\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00")
HEADER_BYTES = 32  # where most positions are drawn: headers and size fields come first
REPEATS = 2  # examples Hypothesis may build per stream a test decodes (it builds some streams again)


@dataclass
class Outcome:
    """What one decode gave: ``image`` (``digest`` its SHA-256), ``error`` (a clean exception; ``digest``
    its type), ``hang``, ``crash`` or ``bad`` (an image that breaks the contract); ``detail`` says how."""

    status: str
    detail: str
    digest: str = ""


class Finding(Exception):
    """A stream that breaks a property; ``recipe`` says how it was made from the real streams."""

    prop = "finding"

    def __init__(self, stream: bytes, error: str, recipe: str):
        super().__init__(f"{self.prop}: {error}")
        self.stream, self.error, self.recipe = stream, error, recipe

    def as_record(self) -> dict:
        return {
            "property": self.prop,
            "sha256": hashlib.sha256(self.stream).hexdigest(),
            "size": len(self.stream),
            "error": self.error[:2000],
            "recipe": self.recipe,
        }


class Hang(Finding):
    prop = "hang"


class Crash(Finding):
    prop = "crash"


class BadOutput(Finding):
    prop = "bad output"


class Nondeterministic(Finding):
    prop = "nondeterministic"


FINDINGS = {"hang": Hang, "crash": Crash, "bad": BadOutput}


def mutated_streams(streams: list[bytes], foreign: list[bytes]):
    """The Hypothesis strategy of (stream, recipe) built from ``streams`` (see the module docstring)."""
    from hypothesis import strategies as st

    def position(n: int):
        return st.one_of(st.integers(0, max(min(n, HEADER_BYTES) - 1, 0)), st.integers(0, max(n - 1, 0)))

    @st.composite
    def mutation(draw, s: bytes, inside: bool = False):
        kinds = ["empty", "truncate", "flip", "huge", "delete", "insert", "splice", "foreign", "random"]
        strings = None if inside else container.strings_of(s)
        if strings is not None:
            kinds.insert(1, "inner")
        kind = draw(st.sampled_from(kinds))
        n = len(s)
        if kind == "empty":
            return b"", "emptied"
        if kind == "inner":
            parts, repack = strings
            k = draw(st.sampled_from(range(len(parts))))
            new, what = draw(mutation(parts[k], inside=True))
            return repack(parts[:k] + [new] + parts[k + 1 :]), f"string {k} in the container {what}"
        if kind == "truncate":
            cut = draw(st.integers(0, max(n - 1, 0)))
            return s[:cut], f"truncated to {cut} bytes"
        if kind == "flip" and n:
            bits = draw(st.lists(st.one_of(st.integers(0, min(n, HEADER_BYTES) * 8 - 1), st.integers(0, n * 8 - 1)),
                                 min_size=1, max_size=4))  # fmt: skip
            out = bytearray(s)
            for b in bits:
                out[b // 8] ^= 1 << (b % 8)
            return bytes(out), f"bit(s) {', '.join(map(str, sorted(set(bits))))} flipped"
        if kind == "huge":
            value = draw(st.sampled_from(HUGE))
            value = value[::-1] if draw(st.booleans()) else value
            at = draw(position(n))
            return s[:at] + value + s[at + len(value) :], f"{value.hex()} written at byte {at}"
        if kind == "delete" and n:
            at, count = draw(position(n)), draw(st.integers(1, 16))
            return s[:at] + s[at + count :], f"{count} byte(s) deleted at byte {at}"
        if kind == "insert":
            at, data = draw(position(n + 1)), draw(st.binary(min_size=1, max_size=16))
            return s[:at] + data + s[at:], f"{data.hex()} inserted at byte {at}"
        if kind == "splice":
            k = draw(st.sampled_from(range(len(streams))))
            a, b = draw(st.integers(0, n)), draw(st.integers(0, len(streams[k])))
            return s[:a] + streams[k][b:], f"its first {a} bytes, then real stream {k} from byte {b}"
        if kind == "foreign" and foreign:
            k = draw(st.sampled_from(range(len(foreign))))
            return foreign[k], f"replaced by foreign stream {k} (another codec's)"
        data = draw(st.binary(min_size=0, max_size=min(2 * n + 16, 4096)))
        return data, f"replaced by {len(data)} random bytes"

    @st.composite
    def mutated(draw):
        i = draw(st.sampled_from(range(len(streams))))
        s, steps = streams[i], []
        for _ in range(draw(st.integers(1, 3))):
            s, what = draw(mutation(s))
            steps.append(what)
        return s, f"real stream {i}: " + "; then ".join(steps)

    return mutated()


@dataclass
class Search:
    """What :func:`search` did: the streams it decoded by hash, its findings, its rounds, its budget."""

    outcomes: dict = field(default_factory=dict)  # sha256 -> (stream, Outcome, how it was made)
    findings: list = field(default_factory=list)
    rounds: int = 0
    examples: int = 0  # streams Hypothesis built (repeats included)
    out_of_budget: int = 0  # new streams not decoded: the examples or the seconds were spent
    seconds: float = 0.0

    def decoded(self) -> int:
        return len(self.outcomes)


def _property(outcome: Callable[[bytes, str], Outcome | None], calls: dict, aside: frozenset):
    """The property of one round: a stream's outcome breaks none of the properties not set aside."""

    def prop(case):
        stream, recipe = case
        calls["n"] += 1
        result = outcome(stream, recipe)
        kind = FINDINGS.get(result.status) if result is not None else None
        if kind is not None and kind.prop not in aside:
            raise kind(stream, result.detail, recipe)

    return prop


def search(
    decode: Callable[[bytes], Outcome],
    streams: list[bytes],
    foreign: list[bytes],
    examples: int,
    budget: float,
    seed: Callable[[int], int],
    database: str | None = None,
    found: list | None = None,
) -> Search:
    """Rounds of Hypothesis over :func:`mutated_streams` until ``examples`` distinct streams were
    decoded (shrinking included), the ``budget`` (seconds) is spent, or a round finds nothing new;
    each finding is shrunk, then its property is set aside. ``seed(k)`` seeds round k;
    ``database`` (a folder) keeps each round's failing examples for the next run, which tries them
    first; ``found`` (a list) receives each finding as its round ends."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as seeded
    from hypothesis.database import DirectoryBasedExampleDatabase

    out = Search()
    found = [] if found is None else found
    start = time.monotonic()
    deadline = start + budget

    def outcome(stream: bytes, recipe: str) -> Outcome | None:
        key = hashlib.sha256(stream).hexdigest()
        if key not in out.outcomes:
            if time.monotonic() > deadline or len(out.outcomes) >= examples:
                out.out_of_budget += 1
                return None
            out.outcomes[key] = (stream, decode(stream), recipe)
        return out.outcomes[key][1]

    aside: set = set()
    strategy = mutated_streams(streams, foreign)
    while len(out.outcomes) < examples and time.monotonic() < deadline and len(aside) < len(FINDINGS):
        calls = {"n": 0}
        prop = _property(outcome, calls, frozenset(aside))
        tag = "+".join(sorted(p.replace(" ", "-") for p in aside)) or "all"
        db = DirectoryBasedExampleDatabase(f"{database}/{tag}") if database else None
        test = settings(
            max_examples=REPEATS * examples,  # many build a stream decoded before, which costs nothing
            deadline=None,
            database=db,
            report_multiple_bugs=True,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
            print_blob=False,
        )(seeded(seed(out.rounds))(given(strategy)(prop)))
        new: list = []
        try:
            test()
        except BaseException as exc:  # Hypothesis raises the findings (several in an ExceptionGroup)
            group = getattr(exc, "exceptions", None) or (exc,)
            if not all(isinstance(e, Finding) for e in group):
                raise
            new = list(group)
        out.rounds += 1
        out.examples += calls["n"]
        out.findings += new
        found += new
        if not new:
            break
        aside |= {f.prop for f in new}
    out.seconds = time.monotonic() - start
    return out
