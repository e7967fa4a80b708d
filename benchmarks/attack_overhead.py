"""Attack wall time against its floor: steps x (one forward + backward of the codec).

Run by hand (figures go into the issue note, not into tests):

    python benchmarks/attack_overhead.py [--model bmshj2018-hyperprior] [--weights nicrobust]
        [--quality 3] [--batch 1] [--size 256] [--steps 12] [--rounds 5] [--device cpu]

Both are measured on the same batch, interleaved round by round so machine noise hits
both alike; medians are printed. Target: ratio <= 1.05 (PGD, FTDA, SSAH).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pytest_nicrobust.attacks import ATTACKS, build_attack
from pytest_nicrobust.attacks.objectives import evaluate_objective
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.datasets import BUILTIN, dataset_folder, load_dataset, to_tensor


def floor_time(codec, x, steps, sync, objective):
    """steps x (forward with the noise proxy + backward to the input), the attack's irreducible work."""
    rec_clean = codec.forward(x, proxy="ste").x_hat.detach()
    gen = torch.Generator(device=x.device).manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        xa = x.clone().requires_grad_(True)
        out = codec.forward(xa, proxy="noise", generator=gen)
        value = evaluate_objective(objective, "rgb", x, xa, rec_clean, out.x_hat, out.bpp)
        torch.autograd.grad(value.sum(), xa)
    sync()
    return time.perf_counter() - start


def attack_time(codec, x, name, preset, steps, sync, objective):
    attack = build_attack(name, codec, preset, objective, seed=0, overrides={"steps": steps})
    start = time.perf_counter()
    attack(x)
    sync()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bmshj2018-hyperprior")
    ap.add_argument("--weights", default="nicrobust", help="nicrobust | zoo | random | checkpoint path")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=256, help="square crop side")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--attacks", default="pgd,ftda,ssah", help="comma-separated attack names (preset: the first)")
    ap.add_argument("--objective", default="recon_error", help="objective of the attacks and the floor")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    codec = load_codec(args.model, args.weights, args.quality, args.device)
    images = load_dataset(BUILTIN, dataset_folder(BUILTIN, None, None, None), crop=args.size)
    x = to_tensor((images * args.batch)[: args.batch]).to(args.device)
    names = args.attacks.split(",")
    floor_time(codec, x, 2, sync, args.objective)  # warm-up
    times = {"floor": []} | {n: [] for n in names}
    for _ in range(args.rounds):
        times["floor"].append(floor_time(codec, x, args.steps, sync, args.objective))
        for n in names:
            times[n].append(attack_time(codec, x, n, next(iter(ATTACKS[n]["presets"])), args.steps, sync, args.objective))
    floor = statistics.median(times["floor"])
    print(f"{codec.label} weights={args.weights} device={args.device} batch={args.batch} size={args.size} "
          f"steps={args.steps} objective={args.objective} rounds={args.rounds} threads={torch.get_num_threads()}")
    print(f"{'what':<10} {'median s':>9} {'ratio':>6}")
    print(f"{'floor':<10} {floor:9.3f} {1.0:6.3f}   (steps x forward+backward)")
    for n in names:
        t = statistics.median(times[n])
        print(f"{n:<10} {t:9.3f} {t / floor:6.3f}")


if __name__ == "__main__":
    main()
