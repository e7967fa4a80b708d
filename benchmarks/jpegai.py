"""JPEG AI through the user's reference-software tree: the figures docs/jpegai.md quotes.

Run by hand against a tree whose extensions are built (docs/jpegai.md); random weights (``--seed``),
one torch thread for the CPU side, as the plugin runs:

    python benchmarks/jpegai.py hyper-gradient TREE [--profile main] [--quality b0.012] [--images 2]
        [--size 256] [--steps 12] [--eps 7] [--objective bitrate|recon_error]
    python benchmarks/jpegai.py build TREE [--profiles main,high] [--quality b0.012] [--rounds 3]
    python benchmarks/jpegai.py device TREE [--device cuda] [--profiles main,high] [--size 256] [--rounds 3]

``hyper-gradient``: the same codec built with ``hyper_gradient = false`` and ``true``; PGD (``--steps``
steps of 2/255 within ``--eps``/255, straight-through proxy, one attack seed per image, the same in
both) on the same bundled photos centre-cropped to ``--size``. Printed per image and as the mean:
the real bitrate increase (bytes of the attacked image's stream over the clean one's), or ΔPSNR,
PSNR(x, C(x)) - PSNR(x', C(x')), of the decoded images.

``build``: a codec's build time (an encoder and a decoder of the tree; with random weights the tree's
initialisation, the calibration and the save too). One warm-up build, then per round a build with no
cache folder, one into an empty cache folder (it keeps the weights) and one from it; medians.

``device``: the codec with ``gpu = true`` on ``--device`` and on the CPU: the median forward + backward
time (straight-through proxy, bitrate objective) of one photo on ``--device``; whether the stream the
device's encoder writes decodes on the CPU's decoder to the device encoder's reconstruction, bit for
bit, and whether the two encoders write the same bytes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch


def photos(count: int, size: int) -> torch.Tensor:
    from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, to_tensor

    return to_tensor(load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), count, size))


def codec(args, profile: str, device: str = "cpu", **options):
    from pytest_nicrobust.codecs import load_codec

    options = {"root": args.root, "profile": profile, "seed": args.seed, **options}
    return load_codec("jpegai", "random", args.quality, device, "random-jpegai", options)


def hyper_gradient(args) -> None:
    from pytest_nicrobust.attacks.pgd import PGD

    x = photos(args.images, args.size)
    print(
        f"{args.root} profile {args.profile} {args.quality}, random weights (seed {args.seed}), "
        f"{args.images} photo(s) {x.shape[-2]}x{x.shape[-1]}, PGD {args.steps} steps eps {args.eps:g}/255, "
        f"objective {args.objective}"
    )
    unit = "%" if args.objective == "bitrate" else "dB"
    for on in (False, True):
        attacked_codec = codec(args, args.profile, hyper_gradient=on)
        clean = attacked_codec.roundtrip(x)
        start, changes = time.perf_counter(), []
        for i in range(x.shape[0]):
            seed = 1000 + i  # one attack seed per image, the same with and without
            attack = PGD(
                attacked_codec, objective=args.objective, proxy="ste", eps=args.eps / 255, steps=args.steps, seed=seed
            )
            x_adv = attack(x[i : i + 1])
            attacked = attacked_codec.roundtrip(x_adv)
            if args.objective == "bitrate":
                changes.append(100 * (attacked.nbytes[0] / clean.nbytes[i] - 1))
            else:
                adv_mse = float((attacked.x_hat[0] - x_adv[0]).pow(2).mean())
                clean_mse = float((clean.x_hat[i] - x[i]).pow(2).mean())
                changes.append(10 * math.log10(adv_mse / clean_mse))
        print(
            f"hyper_gradient = {str(on).lower():5s}: per image "
            + ", ".join(f"{c:+.2f}" for c in changes)
            + f" {unit}; mean {sum(changes) / len(changes):+.2f} {unit} ({time.perf_counter() - start:.0f} s)"
        )


def build(args) -> None:
    from pytest_nicrobust.codecs.loading import use_cache_folder

    def timed(profile: str) -> float:
        start = time.perf_counter()
        codec(args, profile)
        return time.perf_counter() - start

    for profile in args.profiles.split(","):
        timed(profile)  # warm-up: first imports, torch's lazy set-up
        times: dict[str, list[float]] = {"no cache folder": [], "empty cache": [], "warm cache": []}
        for _ in range(args.rounds):
            use_cache_folder(None)
            times["no cache folder"].append(timed(profile))
            with tempfile.TemporaryDirectory() as folder:
                use_cache_folder(folder)
                times["empty cache"].append(timed(profile))
                times["warm cache"].append(timed(profile))
            use_cache_folder(None)
        medians = ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in times.items())
        print(f"{profile} {args.quality}: {medians} (median of {args.rounds})")


def device(args) -> None:
    def timed_pass(model, x) -> float:
        xi = x.clone().requires_grad_(True)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.forward(xi, proxy="ste").bpp.sum().backward()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    x = photos(1, args.size)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(
        f"{args.root}, {args.quality}, random weights (seed {args.seed}), one photo {x.shape[-2]}x{x.shape[-1]}, {name}"
    )
    for profile in args.profiles.split(","):
        on_device, on_cpu = codec(args, profile, args.device, gpu=True), codec(args, profile, gpu=True)
        xd = x.to(args.device)
        timed_pass(on_device, xd)  # warm-up (kernels, tables)
        times = [timed_pass(on_device, xd) for _ in range(args.rounds)]
        streams, reconstruction = on_device.encode_bytes(xd)
        same_image = torch.equal(on_cpu.decode_bytes(streams), reconstruction)
        same_bytes = on_cpu.encode_bytes(x)[0] == streams
        print(
            f"{profile}: tree on {on_device.tree_device}, forward + backward {statistics.median(times):.3f} s "
            f"(median of {args.rounds}); its stream decoded on the CPU {'equals' if same_image else 'DIFFERS FROM'} "
            f"its reconstruction; CPU encoder's bytes {'the same' if same_bytes else 'differ'}"
        )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    jobs = ap.add_subparsers(dest="job", required=True)
    parsers = {name: jobs.add_parser(name) for name in ("hyper-gradient", "build", "device")}
    for job in parsers.values():
        job.add_argument("root", help="the reference-software tree")
        job.add_argument("--quality", default="b0.012")
        job.add_argument("--seed", type=int, default=0, help="of the random weights")
    parsers["hyper-gradient"].add_argument("--profile", default="main")
    for name, flag, kind, default in (
        ("hyper-gradient", "--images", int, 2),
        ("hyper-gradient", "--size", int, 256),
        ("hyper-gradient", "--steps", int, 12),
        ("hyper-gradient", "--eps", float, 7.0),
        ("build", "--rounds", int, 3),
        ("device", "--rounds", int, 3),
        ("device", "--size", int, 256),
    ):
        parsers[name].add_argument(flag, type=kind, default=default)
    parsers["hyper-gradient"].add_argument("--objective", default="bitrate", choices=["bitrate", "recon_error"])
    for name in ("build", "device"):
        parsers[name].add_argument("--profiles", default="main,high")
    parsers["device"].add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as the plugin runs on a CPU
    {"hyper-gradient": hyper_gradient, "build": build, "device": device}[args.job](args)


if __name__ == "__main__":
    main()
