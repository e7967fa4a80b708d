"""Attack wall time against its floor: the forward + backward passes it cannot do without.

Run by hand (figures go into the README's performance section, not into tests):

    python benchmarks/attack_overhead.py --attacks all [--model bmshj2018-hyperprior]
        [--weights nicrobust] [--quality 3] [--batch 1] [--size 256] [--steps 12] [--rounds 3]
        [--objective recon_error] [--device cpu] [--threads 1]

``--attacks all`` is the main job's six attacks and the noise baseline, each with its first
preset (``--steps`` overrides the preset's steps, so every attack makes the same number of
steps). For each attack, one instrumented run counts what it calls: codec forwards with a
gradient (each followed by a backward) and without (C(x) references), and, for CAdv, its
colouriser. Its floor is

    floor = n_grad × t(codec forward + objective + backward) + n_ref × t(codec forward, no grad)
            + for CAdv: n_col × t(colouriser forward + backward) + n_col0 × t(colouriser forward)

with each t measured alone on the same batch, interleaved round by round with the attacks so
machine noise hits both alike (medians). ``ratio`` = attack / floor (target ≤ 1.10); ``other``
= attack − floor, the attack's own arithmetic, of which the instrumented run names the parts it
can time (CAdv's k-means hint placement, MADC's final RMSE fit). The noise baseline calls no
codec: its time is printed against one codec forward.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pytest_nicrobust.attacks import ATTACKS, build_attack
from pytest_nicrobust.attacks.objectives import evaluate_objective
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, to_tensor

ALL = ("ifgsm", "pgd", "ftda", "madc", "ssah", "cadv", "noise")
PARTS = ("hint_mask", "finish")  # attack methods the instrumented run times (when the attack has them)


class Meter:
    """Counts and times the calls of ``fn``, with and without autograd."""

    def __init__(self, fn, sync):
        self.fn, self.sync = fn, sync
        self.grad, self.plain, self.seconds = 0, 0, 0.0

    def __call__(self, *args, **kwargs):
        self.sync()
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.sync()
        self.seconds += time.perf_counter() - start
        if torch.is_grad_enabled():
            self.grad += 1
        else:
            self.plain += 1
        return out


def make(codec, name, objective, steps):
    preset = next(iter(ATTACKS[name]["presets"]))
    has_steps = "steps" in ATTACKS[name]["presets"][preset]
    return build_attack(
        name, codec, preset, objective, seed=0, overrides={"steps": steps} if has_steps and steps else {}
    )


def census(codec, x, name, objective, steps, sync):
    """One instrumented run: {what: (calls with grad, calls without, seconds)}."""
    attack = make(codec, name, objective, steps)
    meters = {"codec": Meter(codec.forward, sync)}
    codec.forward = meters["codec"]
    if hasattr(attack, "colorizer"):
        meters["colorizer"] = attack.colorizer = Meter(attack.colorizer, sync)
    for part in PARTS:
        if hasattr(attack, part):
            meters[part] = Meter(getattr(attack, part), sync)
            setattr(attack, part, meters[part])
    try:
        attack(x)
    finally:
        del codec.forward  # the class's method again
    return attack, {k: (m.grad, m.plain, m.seconds) for k, m in meters.items()}


def codec_step(codec, x, steps, sync, objective):
    """Seconds of one (forward with the noise proxy + objective + backward to the input)."""
    rec_clean = codec.forward(x, proxy="ste").x_hat.detach()
    gen = torch.Generator(device=x.device).manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        xa = x.clone().requires_grad_(True)
        out = codec.forward(xa, proxy="noise", generator=gen)
        value = evaluate_objective(objective, "rgb", x, xa, rec_clean, out.x_hat, out.bpp)
        torch.autograd.grad(value.sum(), xa)
    sync()
    return (time.perf_counter() - start) / steps


@torch.no_grad()
def codec_forward(codec, x, calls, sync):
    start = time.perf_counter()
    for _ in range(calls):
        codec.forward(x, proxy="ste")
    sync()
    return (time.perf_counter() - start) / calls


def colorizer_step(attack, x, steps, sync):
    """(seconds of one colouriser forward + backward to the hints, of one forward without grad)."""
    from pytest_nicrobust.metrics.colors import rgb_to_ycbcr

    attack.generator = torch.Generator(device=x.device).manual_seed(0)
    ycc = rgb_to_ycbcr(x)
    mask = attack.hint_mask(ycc[:, 1:])
    hints = ycc[:, 1:] * mask
    start = time.perf_counter()
    for _ in range(steps):
        delta = torch.zeros_like(hints).requires_grad_(True)
        out = attack.colorizer(ycc, mask, (hints + delta * mask).clamp(0, 1))
        torch.autograd.grad(out.sum(), delta)
    sync()
    with_grad = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    with torch.no_grad():
        attack.colorizer(ycc, mask, hints)
    sync()
    return with_grad, time.perf_counter() - start


def attack_time(codec, x, name, objective, steps, sync):
    attack = make(codec, name, objective, steps)
    start = time.perf_counter()
    attack(x)
    sync()
    return time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bmshj2018-hyperprior")
    ap.add_argument("--weights", default="nicrobust", help="nicrobust | zoo | random | checkpoint path")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=256, help="square crop side")
    ap.add_argument("--steps", type=int, default=12, help="steps of every attack (0: each preset's own)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--attacks",
        default="pgd,ftda,ssah",
        help="comma-separated attack names (preset: the first), or 'all': " + ",".join(ALL),
    )
    ap.add_argument("--objective", default="recon_error", help="objective of the attacks and the floor")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on CPU (1: as a worker of the job)")
    args = ap.parse_args(argv)
    if not args.device.startswith("cuda"):
        torch.set_num_threads(args.threads)

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    codec = load_codec(args.model, args.weights, args.quality, args.device)
    images = load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), crop=args.size)
    x = to_tensor((images * args.batch)[: args.batch]).to(args.device)
    names = list(ALL) if args.attacks == "all" else args.attacks.split(",")
    codec_step(codec, x, 2, sync, args.objective)  # warm-up
    counts, parts, colorizer = {}, {}, None
    for n in names:  # also the attacks' warm-up
        attack, found = census(codec, x, n, args.objective, args.steps, sync)
        counts[n] = found
        parts[n] = {k: v[2] for k, v in found.items() if k in PARTS}
        if "colorizer" in found and colorizer is None:
            colorizer = attack
    times = {n: [] for n in names}
    unit = {"step": [], "forward": [], "col_step": [], "col_forward": []}
    probe = max(2, min(args.steps or 12, 12))
    for _ in range(args.rounds):
        unit["step"].append(codec_step(codec, x, probe, sync, args.objective))
        unit["forward"].append(codec_forward(codec, x, probe, sync))
        if colorizer is not None:
            g, f = colorizer_step(colorizer, x, probe, sync)
            unit["col_step"].append(g)
            unit["col_forward"].append(f)
        for n in names:
            times[n].append(attack_time(codec, x, n, args.objective, args.steps, sync))
    t = {k: statistics.median(v) if v else 0.0 for k, v in unit.items()}
    print(
        f"{codec.label} weights={args.weights} device={args.device} batch={args.batch} size={args.size} "
        f"steps={args.steps or 'preset'} objective={args.objective} rounds={args.rounds} "
        f"threads={torch.get_num_threads()}"
    )
    print(
        f"codec forward+backward {t['step'] * 1e3:.1f} ms, forward (no grad) {t['forward'] * 1e3:.1f} ms"
        + (
            f"; colouriser forward+backward {t['col_step'] * 1e3:.1f} ms, forward {t['col_forward'] * 1e3:.1f} ms"
            if colorizer is not None
            else ""
        )
    )
    print(
        f"{'attack':<7} {'median s':>9} {'floor s':>8} {'ratio':>6} {'other s':>8}  calls (codec grad/ref, colouriser grad/plain); timed parts"
    )
    for n in names:
        attack_s = statistics.median(times[n])
        cg, cp, _ = counts[n]["codec"]
        floor = cg * t["step"] + cp * t["forward"]
        calls = f"codec {cg}/{cp}"
        if "colorizer" in counts[n]:
            kg, kp, _ = counts[n]["colorizer"]
            floor += kg * t["col_step"] + kp * t["col_forward"]
            calls += f", colouriser {kg}/{kp}"
        named = ", ".join(f"{k} {v:.3f} s" for k, v in parts[n].items())
        if floor == 0:  # the noise baseline: no codec call
            print(
                f"{n:<7} {attack_s:9.4f} {'-':>8} {'-':>6} {attack_s:8.4f}  no codec call "
                f"({attack_s / t['forward']:.3f} × one codec forward)"
            )
            continue
        print(
            f"{n:<7} {attack_s:9.3f} {floor:8.3f} {attack_s / floor:6.3f} {attack_s - floor:8.3f}  {calls}"
            + (f"; {named}" if named else "")
        )


if __name__ == "__main__":
    main()
