"""JPEG AI on a device: forward + backward per image, and whether its streams decode the same on the CPU.

Run by hand on a machine with a GPU (docs/jpegai.md lists what was measured where):

    python benchmarks/jpegai_device.py ~/src/jpeg-ai [--device cuda] [--profiles main,high]
        [--quality b0.012] [--size 256] [--rounds 3] [--seed 0]

For each profile the codec (random weights, ``--seed``) is built with ``gpu = true`` on ``--device``
and once on the CPU. Printed: the median of ``--rounds`` forward + backward passes (straight-through
proxy, bitrate objective) on one bundled photo centre-cropped to ``--size``, on ``--device``; then
whether the stream the device's encoder writes decodes on the CPU's decoder to the device encoder's
own reconstruction bit for bit, and whether the two encoders write the same bytes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed_pass(codec, x) -> float:
    xi = x.clone().requires_grad_(True)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = codec.forward(xi, proxy="ste")
    out.bpp.sum().backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the reference-software tree")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--profiles", default="main,high")
    ap.add_argument("--quality", default="b0.012")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as the plugin runs the CPU side

    from pytest_nicrobust.codecs import load_codec
    from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, to_tensor

    x = to_tensor(load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), 1, args.size))
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(
        f"{args.root}, {args.quality}, random weights (seed {args.seed}), one photo {x.shape[-2]}x{x.shape[-1]}, {name}"
    )
    for profile in args.profiles.split(","):
        options = {"root": args.root, "profile": profile, "seed": args.seed, "gpu": True}
        device = load_codec("jpegai", "random", args.quality, args.device, "device", options)
        cpu = load_codec("jpegai", "random", args.quality, "cpu", "cpu", options)
        xd = x.to(args.device)
        timed_pass(device, xd)  # warm-up (kernels, tables)
        times = [timed_pass(device, xd) for _ in range(args.rounds)]
        streams, reconstruction = device.encode_bytes(xd)
        same_image = torch.equal(cpu.decode_bytes(streams), reconstruction)
        same_bytes = cpu.encode_bytes(x)[0] == streams
        print(
            f"{profile}: tree on {device.tree_device}, forward + backward {statistics.median(times):.3f} s "
            f"(median of {args.rounds}); its stream decoded on the CPU {'equals' if same_image else 'DIFFERS FROM'} "
            f"its reconstruction; CPU encoder's bytes {'the same' if same_bytes else 'differ'}"
        )


if __name__ == "__main__":
    main()
