"""``python -m pytest_nicrobust check-codec SPEC``: check a codec against the contract, one line a property.

    python -m pytest_nicrobust check-codec ourcodec.nicrobust:make_codec@3 [--weights w.pt] [--device cuda]
    python -m pytest_nicrobust check-codec nicrobust:mbt2018-mean@q2
    python -m pytest_nicrobust check-codec path/to/checkpoint.pth.tar [--model mbt2018-mean]

Every property prints one PASS/FAIL line; the exit status is 1 if any failed, 2 if the codec
could not be loaded.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import NicrobustError
from ..codecs import check, load_codec
from ..codecs.registry import ARCHITECTURES, parse_spec


def load_spec(spec: str, weights: str | None, device: str, model: str | None):
    """A codec from a check-codec SPEC (see the module docstring)."""
    if os.path.isfile(spec):
        from ..codecs.compressai_models import infer_architecture, load_state_dict_file

        arch = model or infer_architecture(load_state_dict_file(spec, spec), spec)
        if arch not in ARCHITECTURES:
            raise ValueError(f"--model {arch}: not one of {', '.join(ARCHITECTURES)}")
        return load_codec(arch, spec, None, device, os.path.basename(spec))
    keys = parse_spec(spec, os.getcwd())
    quality = keys.get("qualities", [None])[0]
    weights = keys.get("weights") or (os.path.abspath(weights) if weights else None)
    return load_codec(keys["model"], weights, quality, device, keys["model"].rpartition(":")[2],
                      search=(os.getcwd(),))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pytest_nicrobust check-codec", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec", help="as in a suite: nicrobust:mbt2018-mean@q2, package.module:factory@3, or a checkpoint")
    ap.add_argument("--weights", help="weights file passed to an external factory")
    ap.add_argument("--model", help="the CompressAI architecture of a checkpoint (default: read from its keys)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        codec = load_spec(args.spec, args.weights, args.device, args.model)
    except (NicrobustError, ValueError) as exc:
        print(f"check-codec: {exc}", file=sys.stderr)
        return 2
    print(f"checking {args.spec} ({type(codec).__name__}, label {codec.label}, device {codec.device})")
    results = check(codec)
    for r in results:
        print(r.line())
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} of {len(results)} properties hold" + (f"; failed: {', '.join(r.name for r in failed)}"
                                                                              if failed else ""))
    return 1 if failed else 0
