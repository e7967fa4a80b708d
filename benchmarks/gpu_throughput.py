"""Attack throughput by batch size, and a test's share of coding and metrics (GPU runners).

Run by hand (figures go into the issue note and docs/ci.md, not into tests):

    python benchmarks/gpu_throughput.py [--device cuda] [--model mbt2018-mean] [--size 256]
        [--steps 12] [--batches 1,8,max] [--rounds 3] [--attack pgd]

For each batch size: images per second of the attack, and its time over its floor,
steps × (one forward + backward of the codec on the same batch). ``max`` doubles the batch
until CUDA runs out of memory (on CPU it stops at 32). Then, at the largest batch, the share of
a test's work that goes to the real encode + decode (per image bitstreams) and to the metrics.
Same code path as the plugin: ``build_attack``, ``Codec.roundtrip``, ``evaluate``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pytest_nicrobust.attacks import ATTACKS, build_attack
from pytest_nicrobust.attacks.objectives import evaluate_objective
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.codecs.base import round_to_8bit
from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, to_tensor
from pytest_nicrobust.metrics.deltas import evaluate


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def floor(codec, x, steps, objective):
    """steps × (forward with the noise proxy + backward to the input)."""
    rec = codec.forward(x, proxy="ste").x_hat.detach()
    gen = torch.Generator(device=x.device).manual_seed(0)
    for _ in range(steps):
        xa = x.clone().requires_grad_(True)
        out = codec.forward(xa, proxy="noise", generator=gen)
        torch.autograd.grad(evaluate_objective(objective, "rgb", x, xa, rec, out.x_hat, out.bpp).sum(), xa)


def batch_of(images, n, device):
    return to_tensor((images * n)[:n]).to(device)


def fits(codec, images, n, args) -> bool:
    try:
        x = batch_of(images, n, args.device)
        build_attack(args.attack, codec, args.preset, args.objective, 0, "noise", {"steps": 1})(x)
        return True
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return False


def largest_batch(codec, images, args) -> int:
    n, cap = 8, 32 if args.device == "cpu" else 4096
    while n * 2 <= cap and fits(codec, images, n * 2, args):
        n *= 2
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mbt2018-mean")
    ap.add_argument("--weights", default="nicrobust")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--attack", default="pgd")
    ap.add_argument("--objective", default="recon_error")
    ap.add_argument("--batches", default="1,8,max")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--metrics", default="psnr,mse,msssim,vmaf")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    args.preset = next(iter(ATTACKS[args.attack]["presets"]))

    codec = load_codec(args.model, args.weights, args.quality, args.device)
    images = load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), crop=args.size)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"{codec.label}[q{args.quality}] {args.size}² {args.attack}[{args.preset}] {args.steps} steps, "
        f"objective {args.objective}, device {args.device} ({name})"
    )
    sizes = [largest_batch(codec, images, args) if b == "max" else int(b) for b in args.batches.split(",")]
    print(f"{'batch':>6} {'floor s':>9} {'attack s':>9} {'ratio':>6} {'images/s':>9}")
    for n in sizes:
        x = batch_of(images, n, args.device)
        timed(lambda: floor(codec, x, 2, args.objective), args.device)  # warm-up (kernels, allocator)
        floors, attacks = [], []
        for _ in range(args.rounds):
            floors.append(timed(lambda: floor(codec, x, args.steps, args.objective), args.device)[0])
            attack = build_attack(args.attack, codec, args.preset, args.objective, 0, "noise", {"steps": args.steps})
            attacks.append(timed(lambda: attack(x), args.device)[0])
        f, a = statistics.median(floors), statistics.median(attacks)
        print(f"{n:>6} {f:>9.3f} {a:>9.3f} {a / f:>6.3f} {n / a:>9.1f}")

    n = sizes[-1]
    x = batch_of(images, n, args.device)
    attack = build_attack(args.attack, codec, args.preset, args.objective, 0, "noise", {"steps": args.steps})
    t_attack, x_adv = timed(lambda: round_to_8bit(attack(x)), args.device)
    t_code, (clean, adv) = timed(lambda: (codec.roundtrip(x), codec.roundtrip(x_adv)), args.device)
    t_metrics, _ = timed(lambda: evaluate(x, x_adv, clean, adv, tuple(args.metrics.split(","))), args.device)
    total = t_attack + t_code + t_metrics
    print(
        f"one test of {n} images: attack {t_attack:.2f} s ({100 * t_attack / total:.0f} %), "
        f"encode + decode {t_code:.2f} s ({100 * t_code / total:.0f} %), "
        f"metrics {t_metrics:.2f} s ({100 * t_metrics / total:.0f} %); bpp per image: "
        + ", ".join(f"{b:.3f}" for b in adv.bpp.tolist()[:4])
        + (" ..." if n > 4 else "")
    )


if __name__ == "__main__":
    main()
