"""APGD against PGD at equal codec gradients, and what a budget sweep costs against its points run apart.

    python benchmarks/curves_and_apgd.py [--data ../shared/data] [--images 2] [--size 256]

On the shipped codecs (q3), the first ``--images`` Kodak photos when a data root is given (else the
photos bundled with scikit-image), centre-cropped to ``--size``, one torch thread (as a worker runs):

1. PGD and APGD (eps7, 12 steps, recon_error, seed 0): ΔPSNR on the real round trip, the codec
   gradients each spent, the steps at which each stopped gaining (from its loss curve);
2. a PGD sweep over ε = 1, 2, 4, 8, 16 /255 as a curve test runs it (warm starts, half the steps after
   the first point) against the same five points run apart (12 steps each): ΔPSNR per point and seconds.

Prints a table; the figures in docs/attacks.md and the session notes come from it.
"""

from __future__ import annotations

import argparse
import time

import torch

from pytest_nicrobust.attacks import build_attack
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.codecs.base import round_to_8bit
from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, to_tensor
from pytest_nicrobust.metrics.deltas import evaluate

CODECS = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean")
SWEEP = (1, 2, 4, 8, 16)


def delta_psnr(codec, x, x_adv) -> float:
    rows = evaluate(x, x_adv, codec.roundtrip(x), codec.roundtrip(x_adv), ("psnr",))
    return sum(r["delta_psnr"] for r in rows) / len(rows)


def last_gain(trace: list[list[float]]) -> int:
    """The last step at which the images' mean best-so-far objective rose."""
    from pytest_nicrobust.attacks.convergence import best_so_far

    best = [sum(v) / len(v) for v in zip(*(best_so_far(t) for t in trace))]
    return max([k for k in range(1, len(best)) if best[k] > best[k - 1]], default=0)


def run_attack(codec, x, name, overrides=None, warm=None):
    attack = build_attack(name, codec, "eps7", "recon_error", 0, "noise", overrides or {})
    attack.warm_start = warm
    start = time.perf_counter()
    x_adv = round_to_8bit(attack(x))
    return x_adv, time.perf_counter() - start, attack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="data root holding kodak/ (default: the photos bundled with scikit-image)")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    name = "kodak" if args.data else BUNDLED
    x = to_tensor(load_dataset(name, dataset_folder(name, None, args.data, None), args.images, args.size))
    print(f"{args.images} {name} photos, {args.size}² crops, 1 thread\n")
    print(f"{'codec':24} {'attack':6} {'ΔPSNR dB':>9} {'gradients':>9} {'last gain':>9} {'s':>6}")
    for arch in CODECS:
        codec = load_codec(arch, "nicrobust", 3)
        for attack_name in ("pgd", "apgd"):
            x_adv, seconds, attack = run_attack(codec, x, attack_name)
            trace = attack.image_traces()
            print(
                f"{arch:24} {attack_name:6} {delta_psnr(codec, x, x_adv):9.3f} {attack.steps_done:9d} "
                f"{last_gain(trace):9d} {seconds:6.1f}"
            )
    print(f"\nPGD sweep over ε = {', '.join(map(str, SWEEP))} /255: as a curve test runs it, and its points run apart")
    for arch in CODECS:
        codec = load_codec(arch, "nicrobust", 3)
        warm, curve, apart = None, [], []
        sweep_s = apart_s = 0.0
        for eps in SWEEP:
            steps = 12 if warm is None else 6
            x_adv, s, _ = run_attack(codec, x, "pgd", {"eps": eps / 255, "steps": steps}, warm)
            warm, sweep_s = x_adv, sweep_s + s
            curve.append(delta_psnr(codec, x, x_adv))
            x_apart, s, _ = run_attack(codec, x, "pgd", {"eps": eps / 255, "steps": 12})
            apart_s += s
            apart.append(delta_psnr(codec, x, x_apart))
        print(f"{arch:24} sweep {' '.join(f'{v:6.2f}' for v in curve)} dB  {sweep_s:6.1f} s")
        print(
            f"{'':24} apart {' '.join(f'{v:6.2f}' for v in apart)} dB  {apart_s:6.1f} s  "
            f"(sweep / apart: {sweep_s / apart_s:.2f}x the time)"
        )


if __name__ == "__main__":
    main()
