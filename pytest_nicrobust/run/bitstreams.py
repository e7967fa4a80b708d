"""A bitstream test on a worker: a codec's decoder on mutated real streams (docs/bitstreams.md).

The codec is loaded in the worker's child process (:mod:`pytest_nicrobust.child`, CPU), which
encodes the test's images (twice: the same image must give the same bytes) and decodes every
stream, so that a decoder that hangs or crashes costs a runner of the child, not the worker.
Hypothesis builds the mutated streams (:mod:`.mutations`) from the test's seed; its example
database, in the plugin's cache, makes the next run try past findings first. After the search, a
sample of the streams (the real ones and the shortest mutated ones that decoded) is decoded again
in the same process and in a fresh one: the same image (or the same exception) each time, else
``nondeterministic``. With a CUDA device, the codec also encodes on the GPU and the child decodes
those streams on the CPU (``cross_device``); without one, that check is skipped with its reason.

The record gets ``streams_tried`` and ``failures`` (property, sha256, error, how the stream was
made, its bytes in base64 for the controller to save as a file, and the one-line ``replay``
command); the test fails when a property failed, and is skipped, saying why, for a codec without
the stream API.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import time
import types

import pytest

from .. import datasets
from ..codecs.base import pad_to_multiple
from ..codecs.builtin import classical
from ..names import BITSTREAM, CLASSICAL, bitstream_file, codec_label, quality_tag, replay_command
from ..outputs import test_page
from ..seeding import derive_seed
from ..verdict.gates import GateFailure
from . import mutations
from .decoder_child import Decoder
from .measure import timed

MAX_PIXELS_FACTOR = 16  # default max_pixels: this many times the largest padded test image
SAMPLE = 8  # mutated streams decoded again for the determinism check (besides the real ones)
PORTABLE_DB = 40.0  # a GPU-encoded stream decoded on the CPU within this PSNR of the GPU decode is portable
NO_STREAM_API = "no stream API"


class DecoderFindings(GateFailure):
    """A decoder broke a property on some stream; ``details`` lists each finding and its replay."""


def test_key(case) -> str:
    return f"{os.path.basename(case.suite)}::{case.name}"


def codec_spec(case, search: tuple) -> dict:
    """What the child needs to load the test's codec (a suite entry, or a classical codec's name);
    ``search``: the folders an import-path codec is imported from."""
    if isinstance(case.codec, str):
        return {"classical": case.codec}
    entry = case.codec
    fields = ("label", "model", "weights", "quality", "options_json", "home")
    return {"entry": {k: getattr(entry, k) for k in fields}, "search": list(search)}


def foreign_streams(images, own: str | None) -> list[bytes]:
    """The test's first image as the classical codecs write it (another codec's stream)."""
    pixels = images[0].pixels
    return [classical.encode(pixels, fmt, classical.STREAM_QUALITY[fmt]) for fmt in CLASSICAL if fmt != own]


def run_bitstream(case, ctx, result: dict, defense=None) -> None:
    """Fill ``result`` for ``case``; raise DecoderFindings when a property failed."""
    s = case.settings
    key = test_key(case)
    seed = derive_seed(ctx.run_seed, key, BITSTREAM)
    result.update(kind=BITSTREAM, params=case.parameters, seed=str(seed), crop=case.dataset.crop, timings={})
    result.update(streams_tried=0, failures=[])
    facts = result["bitstream"] = {"settings": s.as_dict(), "seconds": {}}
    with test_page.step("load the codec in the child process and the images", {}), timed("load", result["timings"]):
        images = ctx.images(case.dataset)
        decoder = Decoder(ctx.child(), key, codec_spec(case, ctx.search), s.time_limit)
        about = decoder.prepare()
    result["codec"] = about["record"]
    record = about["record"]  # the codec as the child loaded it: what the test page names
    info = types.SimpleNamespace(
        random_init=record.get("random_init"), weights=record.get("weights"), details=record.get("details")
    )
    test_page.describe_test(result["params"], info)
    try:
        if not about["stream_api"]:
            facts["stream_api"] = False
            pytest.skip(f"{NO_STREAM_API}: {about['class']} implements no _encode_padded and _decode_padded "
                        "(docs/codecs-own.md#the-stream-api-what-the-bitstream-tests-decode)")  # fmt: skip
        facts["stream_api"] = True
        _search(case, ctx, result, decoder, images, seed)
    finally:
        decoder.release()
    _conclude(case, result)


def _search(case, ctx, result: dict, decoder: Decoder, images, seed: int) -> None:
    s, facts = case.settings, result["bitstream"]
    seconds, failures = facts["seconds"], result["failures"]
    node = result.get("id") or test_key(case)
    start = time.monotonic()
    pixels = [im.pixels for im in images]
    streams, padded = decoder.encode(pixels)
    again, _ = decoder.encode(pixels)
    seconds["encode"] = time.monotonic() - start
    decoder.max_pixels = s.max_pixels or MAX_PIXELS_FACTOR * max(h * w for h, w in padded)
    facts["max_pixels"] = decoder.max_pixels
    record = _recorder(case, ctx, node, failures, decoder.max_pixels)
    for i, (a, b) in enumerate(zip(streams, again)):
        if a != b:
            record(mutations.Nondeterministic(a, f"encoding image {i} twice gave two streams ({len(a)} and "
                                                 f"{len(b)} bytes, {_first_difference(a, b)})", f"real stream {i}"))  # fmt: skip
    facts["real_streams"] = [len(st) for st in streams]
    start = time.monotonic()
    for i, (stream, shape) in enumerate(zip(streams, padded)):
        outcome = decoder.decode(stream, expect=shape)
        if outcome.status != "image":
            record(
                mutations.FINDINGS.get(outcome.status, mutations.BadOutput)(stream, outcome.detail, f"real stream {i}")
            )
    seconds["real"] = time.monotonic() - start
    own = case.codec if isinstance(case.codec, str) else None
    database = (
        os.path.join(ctx.cache.root, "bitstreams", hashlib.sha256(test_key(case).encode()).hexdigest()[:16])
        if ctx.cache.root
        else None
    )
    found: list = []
    with test_page.step(f"Hypothesis: up to {s.examples} mutated streams", {}):
        done = mutations.search(
            decoder.decode,
            streams,
            foreign_streams(images, own),
            s.examples,
            max(s.budget - (time.monotonic() - start), 0.0),
            lambda k: derive_seed(seed, f"round {k}"),
            database,
            found,
        )
    for finding in done.findings:
        record(finding)
    facts.update(rounds=done.rounds, examples=done.examples, out_of_budget=done.out_of_budget)
    seconds["search"] = done.seconds
    start = time.monotonic()
    with test_page.step("the same stream twice, and in a fresh process", {}):
        for finding in _determinism(decoder, streams, done.outcomes):
            record(finding)
    seconds["determinism"] = time.monotonic() - start
    result["streams_tried"] = done.decoded() + len(streams)
    result["cross_device"] = _cross_device(case, ctx, decoder, pixels)


def _recorder(case, ctx, node: str, failures: list, max_pixels: int):
    """A function that adds a finding to ``failures`` once (by property and stream) and attaches it."""
    json_path = ctx.json_path
    seen = set()

    def record(finding: mutations.Finding) -> None:
        entry = finding.as_record()
        if (entry["property"], entry["sha256"]) in seen:
            return
        seen.add((entry["property"], entry["sha256"]))
        path = bitstream_file(json_path, case.name, entry["property"], entry["sha256"]) if json_path else None
        entry.update(stream=path, data=base64.b64encode(finding.stream).decode("ascii"))
        entry["replay"] = replay_command(
            node, path or f"<{entry['sha256'][:16]}.bin>", max_pixels, case.settings.time_limit
        )
        failures.append(entry)
        test_page.attach_stream(f"{entry['property']}: {entry['sha256'][:16]}.bin", finding.stream)
        test_page.attach_text(
            f"{entry['property']}: replay", f"{entry['error']}\nmade from {entry['recipe']}\n\n{entry['replay']}\n"
        )

    return record


def _first_difference(a: bytes, b: bytes) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"first different byte {at}"


def _sample(streams: list[bytes], outcomes: dict) -> list[bytes]:
    """The real streams, then the shortest mutated ones that decoded to an image (bad ones too:
    a decoder reading past a truncated stream's end gives a different image each time), then the
    shortest that raised, :data:`SAMPLE` mutated ones in all."""
    rank = {"image": 0, "bad": 0, "error": 1}
    decoded = sorted((rank[o.status], len(st), key) for key, (st, o, _) in outcomes.items() if o.status in rank)
    return list(streams) + [outcomes[key][0] for *_, key in decoded[:SAMPLE] if outcomes[key][0] not in streams]


def _determinism(decoder: Decoder, streams: list[bytes], outcomes: dict) -> list:
    """Decode each sampled stream twice in one process, then in a fresh one: the same outcome each
    time. One finding: the shortest stream that broke it (how many did, in its error)."""
    differ, sample = [], _sample(streams, outcomes)
    for stream in sample:
        key = hashlib.sha256(stream).hexdigest()
        first = outcomes[key][1] if key in outcomes else decoder.decode(stream)
        if first.status in ("hang", "crash"):
            continue
        seen = {"first": first, "again in the same process": decoder.decode(stream),
                "in a fresh process": decoder.decode(stream, fresh=True)}  # fmt: skip
        if len({(o.status, o.digest) for o in seen.values()}) > 1:
            how = outcomes[key][2] if key in outcomes else "a real stream"
            differ.append(
                (len(stream), stream, how, "; ".join(f"{k}: {o.status} {o.digest[:12]}" for k, o in seen.items()))
            )
    if not differ:
        return []
    _, stream, how, said = min(differ)
    error = f"the same stream decoded differently ({said}); {len(differ)} of {len(sample)} sampled streams did"
    return [mutations.Nondeterministic(stream, error, how)]


def _cross_device(case, ctx, decoder: Decoder, pixels: list) -> dict:
    """GPU encode, CPU decode: whether the codec's streams are portable (skipped without a GPU)."""
    if isinstance(case.codec, str):
        return {"status": "skipped", "reason": "Pillow codes on the CPU only"}
    if not ctx.device.startswith("cuda"):
        return {"status": "skipped", "reason": f"no CUDA device (the run's device is {ctx.device}): the check "
                                               "encodes on a GPU and decodes on the CPU"}  # fmt: skip
    import torch

    codec = ctx.codec(case.codec)
    psnr, identical = [], 0
    for p in pixels:
        x = pad_to_multiple(datasets.to_tensor([datasets.Image("", p)]).to(codec.device), codec.multiple)
        with torch.no_grad():
            stream = codec._encode_padded(x)[0]
            on_gpu = codec._decode_padded(stream).float().cpu()
        reply = decoder.reply(stream, pixels=True)
        if not reply.ok:
            return {"status": "checked", "portable": False, "error": f"the CPU decode: {reply.status}: {reply.error}"}
        on_cpu = torch.frombuffer(bytearray(reply.payload), dtype=torch.float32).reshape(reply.value["shape"])
        identical += int(torch.equal(on_cpu, on_gpu))
        mse = float((on_cpu - on_gpu).double().pow(2).mean())
        psnr.append(math.inf if mse == 0 else 10 * math.log10(1 / mse))
    return {"status": "checked", "encoded_on": str(codec.device), "decoded_on": "cpu", "identical": identical,
            "psnr_db": [p if math.isfinite(p) else None for p in psnr], "portable": min(psnr) >= PORTABLE_DB}  # fmt: skip


def _conclude(case, result: dict) -> None:
    failures = result["failures"]
    facts = result["bitstream"]
    test_page.attach_text("bitstreams", _summary(case, result))
    if failures:
        props = sorted({f["property"] for f in failures})
        label = codec_label(case.label, quality_tag(case.quality))
        raise DecoderFindings(f"{label}: decoder {', '.join(props)} on mutated streams", _summary(case, result))
    if facts.get("out_of_budget"):
        test_page.attach_text("budget", f"{facts['out_of_budget']} stream(s) not decoded: the budget was spent")


def _summary(case, result: dict) -> str:
    facts = result["bitstream"]
    lines = [f"{case.name}: {len(result['failures'])} finding(s) in {result['streams_tried']} streams decoded "
             f"({facts.get('rounds', 0)} Hypothesis round(s), budget {case.settings.budget:g} s)"]  # fmt: skip
    for f in result["failures"]:
        lines += [f"  {f['property']}: a {f['size']}-byte stream (sha256 {f['sha256'][:16]}): {f['error'][:300]}",
                  f"    made from {f['recipe']}", f"    replay: {f['replay']}"]  # fmt: skip
    return "\n".join(lines)
