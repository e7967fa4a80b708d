"""The child side of ``check-codec``: loads the codec (twice) and runs the contract's properties in a
process of its own, reporting each event as one JSON line on a pipe the parent reads
(:mod:`.check_codec`). Whatever the codec does here (``os._exit``, a native crash, a hang past every
limit) ends this process only; the parent reports it.

Run by the parent as ``python -m pytest_nicrobust.cli.check_codec_child --report-fd N ...``. Events:
``{"event": "loaded", "line"}``, ``{"event": "start", "name"}``, ``{"event": "result", "name",
"passed", "line"}``, ``{"event": "done"}``, or one of ``{"event": "unloadable", "line"}`` (a
mistake of the user's: one line), ``{"event": "load_raised", "line"}``, ``{"event": "outside",
"line"}`` (the codec raised outside a property).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys

from .. import NicrobustError
from ..codecs import check, load_codec
from ..codecs.registry import ARCHITECTURES, parse_spec
from ..timeguard import time_limit

LOAD_LIMIT_S = 600.0  # building a codec once (a research model on a busy CPU takes minutes)


def codec_of_suite(file: str, name: str | None, device: str, root: str, seed: int = 0):
    """The codec of a suite's [[codecs]] entry ``name`` (its label, or label[quality]); the only one if None."""
    from ..codecs import load_entry
    from ..config.suite import parse_suite

    entries = list(dict.fromkeys(case.codec for case in parse_suite(file).cases if hasattr(case, "codec")))
    chosen = [e for e in entries if name in (e.display, e.label)][:1] if name else entries
    if len(chosen) != 1:
        known = ", ".join(e.display for e in entries)
        raise ValueError(
            f"{file}: " + (f"no codec {name!r}" if name else "several codecs") + f"; give --codec one of {known}"
        )
    return load_entry(chosen[0], device, (root,), seed)


def load_spec(
    spec: str, weights: str | None, device: str, model: str | None, codec: str | None, root: str, seed: int = 0
):
    """A codec from a check-codec SPEC (paths already absolute; ``root``: the folder check-codec ran in;
    ``seed``: the run seed random weights are built under, as in a run)."""
    if spec.endswith(".toml") and os.path.isfile(spec):
        return codec_of_suite(spec, codec, device, root, seed)
    if os.path.isfile(spec):
        from ..codecs.builtin.compressai_models import infer_architecture, load_state_dict_file

        arch = model or infer_architecture(load_state_dict_file(spec, spec), spec)
        if arch not in ARCHITECTURES:
            raise ValueError(f"--model {arch}: not one of {', '.join(ARCHITECTURES)}")
        return load_codec(arch, spec, None, device, os.path.basename(spec))
    keys = parse_spec(spec, root)
    quality = keys.get("qualities", [None])[0]
    weights = keys.get("weights") or weights
    return load_codec(
        keys["model"], weights, quality, device, keys["model"].rpartition(":")[2], search=(root,), seed=seed
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pytest_nicrobust.cli.check_codec_child")
    ap.add_argument("--report-fd", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("spec")
    ap.add_argument("--weights")
    ap.add_argument("--model")
    ap.add_argument("--codec")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--time-limit", type=float, default=None)
    args = ap.parse_args(argv)
    faulthandler.enable()  # a native crash prints its stack on stderr before this process ends
    report = os.fdopen(args.report_fd, "w", buffering=1)

    def send(**msg) -> None:
        report.write(json.dumps(msg) + "\n")
        report.flush()

    def build():
        with time_limit(LOAD_LIMIT_S, f"loading {args.spec}"):
            return load_spec(args.spec, args.weights, args.device, args.model, args.codec, args.root, args.seed)

    try:
        codec, twin = build(), build()  # twice: a codec built another way each time fails a property
    except (NicrobustError, ValueError) as exc:
        send(event="unloadable", line=f"check-codec: {exc}")
        return 2
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() in a factory must not pass for a clean exit
        send(event="load_raised", line=f"FAIL  load: loading {args.spec} raised {type(exc).__name__}: {str(exc)[:300]}")
        return 2
    line = f"checking {args.spec} ({type(codec).__name__}, label {codec.label}, device {codec.device})"
    if codec.info.details:  # what the codec says of itself: file, sha256, a tree's version, official weights
        line += "\ncodec: " + "; ".join(f"{key}={value}" for key, value in codec.info.details.items())
    send(event="loaded", line=line)
    try:
        check(
            codec,
            twin=twin,
            on_start=lambda name: send(event="start", name=name),
            on_result=lambda r: send(event="result", name=r.name, passed=r.passed, line=r.line()),
            **({"time_limit_s": args.time_limit} if args.time_limit else {}),
        )
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        send(
            event="outside",
            line=f"FAIL  check: the codec raised {type(exc).__name__}: {str(exc)[:300]} outside a property",
        )
        return 1
    send(event="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
