"""How long building a JPEG AI codec with random weights takes, with and without the engine cache.

Run by hand against a reference-software tree (docs/jpegai.md):

    python benchmarks/jpegai_build.py ~/src/jpeg-ai [--profiles main,high] [--quality b0.012]
        [--rounds 3] [--seed 0]

A worker builds a codec (an encoder and a decoder of the tree, the named base model) whenever it
first needs it. With random weights the build also initialises the tree under the seed, calibrates
four layers on a synthetic image and saves the weights; the engine cache keeps those calibrated
weights in the plugin's cache folder (keyed by the tree's identity, profile, beta and seed), so a
later build loads them instead. One warm-up build, then per round: a build with no cache folder,
one into an empty cache folder (it fills it) and one from that folder; medians, one torch thread.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def build(root, profile, quality, seed):
    from pytest_nicrobust.codecs import load_codec

    start = time.perf_counter()
    load_codec("jpegai", "random", quality, "cpu", "random-jpegai", {"root": root, "profile": profile, "seed": seed})
    return time.perf_counter() - start


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the reference-software tree")
    ap.add_argument("--profiles", default="main,high")
    ap.add_argument("--quality", default="b0.012")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as the plugin runs on a CPU

    from pytest_nicrobust.codecs import loading

    cached = hasattr(loading, "use_cache_folder")
    for profile in args.profiles.split(","):
        build(args.root, profile, args.quality, args.seed)  # warm-up: first imports, torch's lazy set-up
        times: dict[str, list[float]] = {"no cache folder": [], "empty cache": [], "warm cache": []}
        for _ in range(args.rounds):
            if cached:
                loading.use_cache_folder(None)
            times["no cache folder"].append(build(args.root, profile, args.quality, args.seed))
            if cached:
                with tempfile.TemporaryDirectory() as folder:
                    loading.use_cache_folder(folder)
                    times["empty cache"].append(build(args.root, profile, args.quality, args.seed))
                    times["warm cache"].append(build(args.root, profile, args.quality, args.seed))
                loading.use_cache_folder(None)
        print(
            f"{profile} {args.quality}: "
            + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in times.items() if v)
            + f" (median of {args.rounds})"
        )


if __name__ == "__main__":
    main()
