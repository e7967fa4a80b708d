"""Attack table: ΔPSNR, ΔVMAF and bitrate increase per attack × objective on Kodak crops.

    python benchmarks/attack_table.py                      # shipped bmshj2018-hyperprior q3, 4 Kodak 256² crops
    python benchmarks/attack_table.py --weights ckpt.pt    # any local checkpoint of that architecture
    python benchmarks/attack_table.py --attacks ftda,noise --objectives recon_error --steps 10

Each attack runs its default preset (first one in the registry) on the codec's differentiable
pass; x' is rounded to 8 bits, then x and x' go through the codec's real ``roundtrip`` and
:func:`pytest_nicrobust.metrics.deltas.evaluate` (the README's Definitions). Printed: a Markdown table
of means over images, plus the perturbation's own PSNR(x, x') (visibility) and seconds per attack.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ATTACK_ORDER = ("noise", "pgd", "ftda", "madc", "madc-linf", "ssah", "cadv")


def data_folder(explicit: str | None) -> str:
    if explicit:
        return explicit
    root = os.environ.get("NICROBUST_DATA")
    if root:
        return os.path.join(root, "kodak")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(os.path.join(here, "..", "shared", "data", "kodak"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bmshj2018-hyperprior")
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--weights", default="nicrobust", help="nicrobust (shipped), zoo, random or a checkpoint path")
    p.add_argument("--data", default=None, help="Kodak folder (default $NICROBUST_DATA/kodak or ../shared/data/kodak)")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--attacks", default=",".join(ATTACK_ORDER))
    # the objectives aligned with the gated metrics first (ΔPSNR/ΔMSE/ΔVMAF, ΔMS-SSIM, bitrate), then FTDA's
    p.add_argument("--objectives", default="recon_error,msssim_error,bitrate,recon_shift")
    p.add_argument("--steps", type=int, default=None, help="override every attack's steps (quick runs)")
    p.add_argument("--metrics", default="psnr,vmaf")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from pytest_nicrobust.attacks import ATTACKS, build_attack
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.codecs.base import round_to_8bit
    from pytest_nicrobust.datasets import load_dataset, to_tensor
    from pytest_nicrobust.metrics.deltas import evaluate, mean_of

    if args.threads:
        torch.set_num_threads(args.threads)
    codec = load_codec(args.model, args.weights, args.quality, "cpu")
    folder = data_folder(args.data)
    x = round_to_8bit(to_tensor(load_dataset("kodak", folder, args.images, args.crop)))
    metrics = tuple(args.metrics.split(","))
    clean = codec.roundtrip(x)
    print(
        f"codec: {codec.label} weights={args.weights}; data: {folder} first {args.images} images, "
        f"{args.crop}² centre crops; clean PSNR {mean_of(evaluate(x, x, clean, clean, ('psnr',)))['psnr_clean']:.2f} dB, "
        f"clean bpp {clean.bpp.mean():.3f}",
        flush=True,
    )

    rows = []
    for name in args.attacks.split(","):
        preset = next(iter(ATTACKS[name]["presets"]))
        objectives = ["-"] if name == "noise" else args.objectives.split(",")
        for objective in objectives:
            overrides = {}
            if args.steps is not None and "steps" in ATTACKS[name]["presets"][preset]:
                overrides["steps"] = args.steps
            attack = build_attack(
                name, codec, preset, "none" if objective == "-" else objective, args.seed, "noise", overrides
            )
            t = time.time()
            x_adv = round_to_8bit(attack(x))
            seconds = time.time() - t
            stats = mean_of(evaluate(x, x_adv, clean, codec.roundtrip(x_adv), metrics))
            row = {"attack": f"{name}[{preset}]", "objective": objective, "seconds": seconds, **stats}
            rows.append(row)
            print(_fmt_row(row, metrics), flush=True)

    print()
    print(_table(rows, metrics))
    return 0


def _cells(row, metrics):
    cells = [row["attack"], row["objective"]]
    for m in metrics:
        cells.append(f"{row[f'delta_{m}']:+.2f}")
    cells += [f"{100 * row['bitrate_increase']:+.1f}%", f"{row['psnr_inputs']:.1f}", f"{row['seconds']:.0f}"]
    return cells


def _header(metrics):
    return ["attack[preset]", "objective", *[f"Δ{m.upper()}" for m in metrics], "bitrate incr.", "PSNR(x,x')", "s"]


def _fmt_row(row, metrics):
    return "  ".join(f"{h}={c}" for h, c in zip(_header(metrics), _cells(row, metrics)))


def _table(rows, metrics):
    head = _header(metrics)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cells(r, metrics)) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
