"""The search for decoder findings (run/mutations.py) against decoders written here, in-process: each
property found and shrunk, one finding not hiding another, the examples and the budget kept."""

from __future__ import annotations

import hashlib
import time

from pytest_nicrobust.codecs import container
from pytest_nicrobust.run.mutations import Outcome, search

REAL = [bytes(range(40, 200)), bytes(range(60, 220))]
FOREIGN = [b"\xff\xd8\xff\xe0 another codec"]


def run(decoder, examples=200, budget=60.0, seed=0, database=None):
    calls = []

    def decode(stream):
        calls.append(stream)
        return decoder(stream)

    done = search(decode, REAL, FOREIGN, examples, budget, lambda k: seed + k, database)
    return done, calls


def fussy(stream: bytes) -> Outcome:
    """Crashes on a stream under 8 bytes, returns NaN when byte 0 is not a real stream's, else decodes."""
    if len(stream) < 8:
        return Outcome("crash", "killed by SIGSEGV")
    if stream[0] not in (40, 60):
        return Outcome("bad", "NaN")
    return Outcome("image", "an image", hashlib.sha256(stream).hexdigest())


def test_each_property_is_found_and_shrunk_and_one_does_not_hide_the_other():
    done, calls = run(fussy)
    found = {f.prop: f for f in done.findings}
    assert set(found) == {"crash", "bad output"} and done.rounds >= 2
    assert found["crash"].stream == b"" and found["crash"].recipe == "real stream 0: emptied"
    bad = found["bad output"]
    assert len(bad.stream) >= 8 and bad.stream[0] not in (40, 60) and bad.error == "NaN"
    assert len(set(calls)) == len(calls) == done.decoded() <= 200  # a stream is decoded once, at most `examples`


def test_the_same_seed_finds_the_same_streams_and_another_seed_searches_elsewhere():
    first, _ = run(fussy, seed=7)
    again, _ = run(fussy, seed=7)
    assert [f.stream for f in first.findings] == [f.stream for f in again.findings]
    assert set(first.outcomes) == set(again.outcomes)
    assert set(run(fussy, seed=8)[0].outcomes) != set(first.outcomes)


def test_the_database_makes_the_next_run_try_past_findings_first(tmp_path):
    def rare(stream):
        return Outcome("hang", "no answer") if stream[:1] == b"\x00" and len(stream) > 100 else Outcome("error", "bad")

    first, _ = run(rare, examples=1000, database=str(tmp_path))
    assert [f.prop for f in first.findings] == ["hang"]
    again, calls = run(rare, examples=1000, seed=99, database=str(tmp_path))  # another seed: only the database helps
    assert [f.stream for f in again.findings] == [f.stream for f in first.findings]
    assert calls.index(again.findings[0].stream) == 0  # tried first


def test_past_the_budget_no_new_stream_is_decoded_and_the_search_ends():
    def slow(stream):
        time.sleep(0.05)
        return Outcome("crash", "killed by SIGSEGV") if len(stream) < 100 else Outcome("error", "bad")

    start = time.monotonic()
    done, calls = run(slow, budget=0.5)
    assert len(calls) <= 12 and done.out_of_budget > 0 and time.monotonic() - start < 30
    assert [f.prop for f in done.findings] == ["crash"]  # found, shrunk as far as the budget allowed


def test_the_strings_inside_the_plugins_container_are_mutated_too():
    real = container.pack([[bytes(range(100))], [b"z" * 12]], (64, 64), 6)

    def coder(stream):
        found = container.strings_of(stream)
        if found is None:
            return Outcome("error", "ContainerError")
        return Outcome("crash", "killed by SIGSEGV") if len(found[0][0]) < 16 else Outcome("image", "ok", "x")

    done = search(coder, [real], [], 1000, 60.0, lambda k: k)
    crash = next(f for f in done.findings if f.prop == "crash")
    assert "string 0 in the container" in crash.recipe
    assert container.strings_of(crash.stream)[0][0] == b""  # shrunk to an empty string inside a valid container
