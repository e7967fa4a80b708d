"""What the gradient through JPEG AI's integer hyperprior changes in a bitrate attack (docs/jpegai.md).

Run by hand against a reference-software tree (its extensions built, docs/jpegai.md):

    python benchmarks/jpegai_hyper_gradient.py ~/src/jpeg-ai [--profile main] [--quality b0.012]
        [--images 2] [--size 256] [--steps 12] [--eps 7] [--seed 0] [--objective bitrate]

The same codec (random weights, ``--seed``) is built twice, ``hyper_gradient = false`` and ``true``;
PGD (``--steps`` steps of 2/255, budget ``--eps``/255, straight-through proxy, one attack seed per
image, the same in both) attacks the same bundled photos, centre-cropped to ``--size``. Printed per
image and as the mean: the real bitrate increase, bytes of the attacked image's stream over the
clean one's (``--objective bitrate``), or ΔPSNR, PSNR(x, C(x)) - PSNR(x', C(x')) of the decoded images
(``--objective recon_error``).
"""

from __future__ import annotations

import argparse
import math
import time

import torch


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the reference-software tree")
    ap.add_argument("--profile", default="main")
    ap.add_argument("--quality", default="b0.012")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--eps", type=float, default=7.0, help="L-infinity budget in 1/255")
    ap.add_argument("--seed", type=int, default=0, help="of the random weights")
    ap.add_argument("--objective", default="bitrate", choices=["bitrate", "recon_error"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as the plugin runs on a CPU

    from pytest_nicrobust.attacks.pgd import PGD
    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, to_tensor

    images = load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), args.images, args.size)
    x = to_tensor(images)
    print(
        f"{args.root} profile {args.profile} {args.quality}, random weights (seed {args.seed}), "
        f"{args.images} photo(s) {x.shape[-2]}x{x.shape[-1]}, PGD {args.steps} steps eps {args.eps:g}/255, "
        f"objective {args.objective}"
    )
    for hyper_gradient in (False, True):
        options = {"root": args.root, "profile": args.profile, "seed": args.seed, "hyper_gradient": hyper_gradient}
        codec = load_codec("jpegai", "random", args.quality, "cpu", "random-jpegai", options)
        clean = codec.roundtrip(x)
        start, changes = time.perf_counter(), []
        for i in range(x.shape[0]):
            attack = PGD(
                codec, objective=args.objective, proxy="ste", eps=args.eps / 255, steps=args.steps, seed=1000 + i
            )
            x_adv = attack(x[i : i + 1])
            attacked = codec.roundtrip(x_adv)
            if args.objective == "bitrate":
                changes.append(100 * (attacked.nbytes[0] / clean.nbytes[i] - 1))
            else:  # ΔPSNR = PSNR(x, C(x)) - PSNR(x', C(x'))
                adv_mse = float((attacked.x_hat[0] - x_adv[0]).pow(2).mean())
                clean_mse = float((clean.x_hat[i] - x[i]).pow(2).mean())
                changes.append(10 * math.log10(adv_mse / clean_mse))
        unit = "%" if args.objective == "bitrate" else "dB"
        print(
            f"hyper_gradient = {str(hyper_gradient).lower():5s}: per image "
            + ", ".join(f"{c:+.2f}" for c in changes)
            + f" {unit}; mean {sum(changes) / len(changes):+.2f} {unit} ({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
