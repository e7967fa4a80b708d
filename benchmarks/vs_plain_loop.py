"""The plugin against the loop a codec team would write by hand, side by side in one run.

    python benchmarks/vs_plain_loop.py [--images 6] [--crop 256] [--rounds 3] [--threads 0]

The plain loop (written here, the obvious code): for each image, rebuild the model from its
checkpoint, run PGD ε 7/255, α 2/255, 12 steps maximising MSE(C(x'), x') with the entropy models
in noise mode, round x' to 8 bits, encode and decode x and x' for real, PSNR with numpy, and the
four VMAFs (x/C(x), x'/C(x'), x/x', C(x)/C(x')) through ffmpeg's libvmaf (the reference tool).
The plugin: one pytest run, as a whole process, of the same case (shipped hyperprior q3, the same
photos, PGD eps7 with the objective recon_error, ``--nicrobust-metrics psnr,vmaf``, ``-n 0``).

Printed per round: both wall times and their ratio, the plugin's split of its measured work
(load, attack, encode + decode, metrics) and the share of coding and metrics, the load average
and the thread count; then that both give the same numbers (ΔPSNR and VMAF per image).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = """
images = {images}
crop = {crop}
worst_case = false
transfer = false

[[codecs]]
model = "bmshj2018-hyperprior"
weights = "nicrobust"
qualities = [3]

[[attacks]]
name = "pgd"
presets = ["eps7"]
objectives = ["recon_error"]

[[datasets]]
name = "skimage-photos"
"""
THRESHOLDS = "[defaults]\ndelta_psnr = 4.5\ndelta_vmaf = 20.0\n"  # the shipped limits on the metrics compared


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def libvmaf(exe: str, reference: np.ndarray, distorted: np.ndarray, tmp: str) -> float:
    from PIL import Image

    ref, dis, log = (os.path.join(tmp, f) for f in ("ref.png", "dis.png", "vmaf.json"))
    Image.fromarray(reference).save(ref)
    Image.fromarray(distorted).save(dis)
    graph = (
        "[0:v]format=yuv420p[dis];[1:v]format=yuv420p[ref];"
        f"[dis][ref]libvmaf=model=version=vmaf_v0.6.1:log_fmt=json:log_path={log}"
    )
    subprocess.run(
        [exe, "-nostdin", "-v", "error", "-i", dis, "-i", ref, "-lavfi", graph, "-f", "null", "-"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with open(log) as f:
        return float(json.load(f)["frames"][0]["metrics"]["vmaf"])


def plain_loop(images, crop, seed=0) -> list[dict]:
    """The hand-written loop; returns per image ΔPSNR and the four VMAFs."""
    import torch
    from compressai.entropy_models import EntropyModel
    from compressai.zoo.image import model_architectures

    from pytest_nicrobust.codecs.builtin.shipped import shipped_entry, shipped_path

    entry = shipped_entry("bmshj2018-hyperprior", 3)
    exe, rows = ffmpeg(), []
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        for name, pixels in images:
            state = torch.load(shipped_path(entry), map_location="cpu", weights_only=True)
            net = model_architectures["bmshj2018-hyperprior"](N=entry["N"], M=entry["M"])
            net.load_state_dict({k: v.float() for k, v in state.items()})
            net.update(force=True)
            net.eval()
            x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
            for m in net.modules():
                if isinstance(m, EntropyModel):
                    m.train()  # noise instead of rounding, for gradients
            eps, alpha = 7 / 255, 2 / 255
            x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
            for _ in range(12):
                x_adv.requires_grad_(True)
                loss = (net(x_adv)["x_hat"] - x_adv).pow(2).mean()
                (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
            net.eval()
            x_adv = torch.round(x_adv * 255) / 255
            with torch.no_grad():
                recs = []
                for image in (x, x_adv):
                    enc = net.compress(image)
                    recs.append(net.decompress(enc["strings"], enc["shape"])["x_hat"].clamp(0, 1))

            def u8(t):
                return (t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

            a, a_adv, r, r_adv = u8(x), u8(x_adv), u8(recs[0]), u8(recs[1])

            def psnr(p, q):
                return 10 * np.log10(255**2 / np.mean((p.astype(np.float64) - q) ** 2))

            rows.append(
                {
                    "image": name,
                    "delta_psnr": psnr(a, r) - psnr(a_adv, r_adv),
                    "vmaf_clean": libvmaf(exe, a, r, tmp),
                    "vmaf_adv": libvmaf(exe, a_adv, r_adv, tmp),
                    "vmaf_inputs": libvmaf(exe, a, a_adv, tmp),
                    "vmaf_recons": libvmaf(exe, r, r_adv, tmp),
                }
            )
    return rows


def run_plain(args) -> tuple[float, list[dict]]:
    """The plain loop as its own whole process, as a team would run its script."""
    code = textwrap.dedent(f"""
        import json, sys, time
        start = time.perf_counter()
        sys.path.insert(0, {os.path.join(ROOT, "benchmarks")!r})
        import torch
        if {args.threads}:
            torch.set_num_threads({args.threads})
        from vs_plain_loop import plain_loop, photos
        rows = plain_loop(photos({args.images}, {args.crop}), {args.crop})
        print(json.dumps({{"rows": rows, "threads": torch.get_num_threads()}}))
    """)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, out["rows"], out["threads"]


def run_plugin(args, folder) -> tuple[float, dict]:
    suite = os.path.join(folder, "case.toml")
    with open(suite, "w") as f:
        f.write(SUITE.format(images=args.images, crop=args.crop))
    with open(os.path.join(folder, "thresholds.toml"), "w") as f:
        f.write(THRESHOLDS)
    out = os.path.join(folder, "r.json")
    cache = tempfile.mkdtemp(dir=folder)  # a fresh x' cache: every round attacks
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        suite,
        "-n",
        "0",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--nicrobust-metrics",
        "psnr,vmaf",
        f"--nicrobust-json={out}",
        f"--nicrobust-cache={cache}",
        "-W",
        "ignore",
    ]
    if args.threads:
        cmd += ["--nicrobust-threads", str(args.threads)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=folder)
    wall = time.perf_counter() - start
    with open(out) as f:
        doc = json.load(f)
    if not doc["tests"]:
        raise RuntimeError(proc.stdout[-3000:])
    return wall, doc["tests"][0]


def photos(n, crop):
    from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset

    return [(im.name, im.pixels) for im in load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), n, crop)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in both (0: each tool's default)")
    args = ap.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.rounds):
            load = os.getloadavg()[0]
            t_plain, plain, threads = run_plain(args)
            t_plugin, test = run_plugin(args, folder)
            t = test["timings"]
            parts = {
                "load": sum(v for k2, v in t.items() if k2 == "load"),  # keys: run.measure.STEPS
                "attack": sum(v for k2, v in t.items() if k2.startswith(("attack:", "cache_hit:", "cache_wait:"))),
                "coding": sum(v for k2, v in t.items() if k2.startswith("coding:")),
                "metrics": sum(v for k2, v in t.items() if k2.startswith("metrics:")),
            }
            work = sum(parts.values())
            ratios.append(t_plain / t_plugin)
            print(
                f"round {k + 1}: plain loop {t_plain:.1f} s ({threads} thread(s)), plugin {t_plugin:.1f} s "
                f"(threads {args.threads or 'default'}): plugin is {t_plain / t_plugin:.2f}x the plain loop; "
                f"load average {load:.2f}"
            )
            print(
                "   plugin's measured work (busy time, summed over its image threads): "
                + ", ".join(f"{k2} {v:.2f} s" for k2, v in parts.items())
                + f"; coding + metrics {100 * (parts['coding'] + parts['metrics']) / work:.0f} % of it"
            )
        rows = test.get("per_image") or test["modes"][test["headline_mode"]]["per_image"]  # format 3: once, in modes
        ours = {r["image"]: r for r in rows}
        print("same numbers (plain | plugin):")
        for row in plain:
            mine = ours[row["image"]]
            print(
                f"   {row['image']}: ΔPSNR {row['delta_psnr']:.3f} | {mine['delta_psnr']:.3f} dB; VMAF clean "
                f"{row['vmaf_clean']:.2f} | {mine['vmaf_clean']:.2f}, attacked {row['vmaf_adv']:.2f} | "
                f"{mine['vmaf_adv']:.2f}, inputs {row['vmaf_inputs']:.2f} | {mine['vmaf_inputs']:.2f}, "
                f"reconstructions {row['vmaf_recons']:.2f} | {mine['vmaf_recons']:.2f}"
            )
        dp = [abs(r["delta_psnr"] - ours[r["image"]]["delta_psnr"]) for r in plain]
        dv = [
            abs(r[f"vmaf_{k2}"] - ours[r["image"]][f"vmaf_{k2}"])
            for r in plain
            for k2 in ("clean", "adv", "inputs", "recons")
        ]
        print(f"max |ΔPSNR difference| {max(dp):.3f} dB (different random starts); max |VMAF difference| {max(dv):.3f}")
        print(f"plugin / plain loop speed: {', '.join(f'{r:.2f}x' for r in ratios)}")


if __name__ == "__main__":
    main()
