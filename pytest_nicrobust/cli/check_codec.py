"""``python -m pytest_nicrobust check-codec SPEC``: check a codec against the contract, one line a property.

    python -m pytest_nicrobust check-codec ourcodec.nicrobust:make_codec@3 [--weights w.pt] [--device cuda]
    python -m pytest_nicrobust check-codec nicrobust:mbt2018-mean@q2
    python -m pytest_nicrobust check-codec path/to/checkpoint.pth.tar [--model mbt2018-mean]
    python -m pytest_nicrobust check-codec suites/ours.toml --codec tcm[0.0025]   # a codec of a suite

Every property prints one PASS/FAIL line; the exit status is 1 if any failed, 2 if the codec
could not be loaded. A factory or codec that raises ``SystemExit`` (``sys.exit(0)``) or
``GeneratorExit`` cannot end the check with status 0: it is a FAIL line and a non-zero exit
(``os._exit`` ends the process without Python's help, so nothing can report it: read the
"N of M properties hold" line, which only a finished check prints).
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import NicrobustError
from ..codecs import check, load_codec
from ..codecs.registry import ARCHITECTURES, parse_spec


def codec_of_suite(file: str, name: str | None, device: str):
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
    return load_entry(chosen[0], device, (os.getcwd(),))


def load_spec(spec: str, weights: str | None, device: str, model: str | None, codec: str | None = None):
    """A codec from a check-codec SPEC (see the module docstring)."""
    if spec.endswith(".toml") and os.path.isfile(spec):
        return codec_of_suite(spec, codec, device)
    if os.path.isfile(spec):
        from ..codecs.builtin.compressai_models import infer_architecture, load_state_dict_file

        arch = model or infer_architecture(load_state_dict_file(spec, spec), spec)
        if arch not in ARCHITECTURES:
            raise ValueError(f"--model {arch}: not one of {', '.join(ARCHITECTURES)}")
        return load_codec(arch, spec, None, device, os.path.basename(spec))
    keys = parse_spec(spec, os.getcwd())
    quality = keys.get("qualities", [None])[0]
    weights = keys.get("weights") or (os.path.abspath(weights) if weights else None)
    return load_codec(keys["model"], weights, quality, device, keys["model"].rpartition(":")[2], search=(os.getcwd(),))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pytest_nicrobust check-codec",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("spec", help="as in a suite: nicrobust:mbt2018-mean@q2, package.module:factory@3, or a checkpoint")
    ap.add_argument("--weights", help="weights file passed to an external factory")
    ap.add_argument("--model", help="the CompressAI architecture of a checkpoint (default: read from its keys)")
    ap.add_argument("--codec", help="with a suite file as SPEC: which of its codecs (label or label[quality])")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="what one property may take before it fails (default 120; large models on a busy CPU need more)",
    )
    args = ap.parse_args(argv)
    try:
        codec = load_spec(args.spec, args.weights, args.device, args.model, args.codec)
    except (NicrobustError, ValueError) as exc:
        print(f"check-codec: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() in a factory must not pass for a clean exit
        print(f"FAIL  load: loading {args.spec} raised {type(exc).__name__}: {str(exc)[:300]}")
        print(f"check-codec: {args.spec} could not be loaded", file=sys.stderr)
        return 2
    try:
        print(f"checking {args.spec} ({type(codec).__name__}, label {codec.label}, device {codec.device})")
        results = check(codec, **({"time_limit_s": args.time_limit} if args.time_limit else {}))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        print(f"FAIL  check: the codec raised {type(exc).__name__}: {str(exc)[:300]} outside a property")
        return 1
    for r in results:
        print(r.line())
    failed = [r for r in results if not r.passed]
    print(
        f"{len(results) - len(failed)} of {len(results)} properties hold"
        + (f"; failed: {', '.join(r.name for r in failed)}" if failed else "")
    )
    return 1 if failed else 0
