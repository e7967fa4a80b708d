"""Train compact CompressAI image codecs (``python scripts/train.py``, from the repository root).

A maintainers' tool, not part of the installed package.

The project ships its own small checkpoints (CompressAI's pretrained weights
cannot be downloaded in offline CI).  This tool trains a CompressAI
architecture at reduced channel widths ``N``/``M`` with the usual
rate-distortion loss::

    loss = lambda * 255**2 * MSE + bpp

on random crops of the *training-only* image folders, with CompressAI's two
optimisers (main Adam for the network, auxiliary Adam for the entropy
bottleneck quantiles driven by ``model.aux_loss()``).

Outputs
-------
``--out FILE``       resumable training state (model, both optimisers, step,
                     elapsed time, RNG state, configuration).  ``--resume``
                     continues from it.
``--pack DIR``       downscale + JPEG re-encode the training folders (to carry them
                     to a GPU machine; the shipped models used ``--max-side 768
                     --jpeg-quality 95`` in round 1 and ``576`` / ``85`` in round 2).
``--export FILE``    the shipping file: a flat ``state_dict`` (tensors only)
                     saved after ``model.update(force=True)`` so that the
                     entropy-coder CDF tables are included.  With
                     ``--export-dtype float16`` the learned parameters are
                     stored in half precision; the model is round-tripped
                     through float16 *before* ``update()`` so the stored CDF
                     tables match the weights exactly as they will be loaded.

Every file this tool reads is loaded with ``torch.load(..., weights_only=True)``
and every file it writes holds only tensors, ints, floats, strings, lists,
dicts and ``None``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent

# CompressAI's lambda ladder for the MSE models (quality 1..8).
LAMBDAS_MSE = {
    1: 0.0018,
    2: 0.0035,
    3: 0.0067,
    4: 0.0130,
    5: 0.0250,
    6: 0.0483,
    7: 0.0932,
    8: 0.1800,
}

# The trainable architectures and their default (compact) channel widths; they keep a
# float16 checkpoint well under 4 MiB.
DEFAULT_WIDTHS = {
    "bmshj2018-factorized": (96, 128),
    "bmshj2018-hyperprior": (64, 96),
    "mbt2018-mean": (64, 80),
    "mbt2018": (64, 80),
    "cheng2020-anchor": (64, 64),
}
ARCHITECTURES = tuple(DEFAULT_WIDTHS)

TRAINING_FOLDERS = ("bsds_train", "sunhays80", "wikiphotos")
# Evaluation sets: training on them would leak the benchmark.
FORBIDDEN_FOLDERS = ("kodak", "bsds", "nips2017")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def default_data_root() -> Path:
    """``$NICROBUST_DATA``, else ``<repository>/../shared/data``."""
    env = os.environ.get("NICROBUST_DATA")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data"


def check_training_folder(folder: Path) -> None:
    name = folder.resolve().name.lower()
    if name in FORBIDDEN_FOLDERS:
        raise SystemExit(
            f"refusing to train on {folder}: '{name}' is an evaluation set (forbidden: {', '.join(FORBIDDEN_FOLDERS)})"
        )


def load_images(folders: list[Path], min_side: int) -> list[torch.Tensor]:
    """All images of ``folders`` as uint8 CHW tensors (RGB)."""
    import numpy as np
    from PIL import Image

    images = []
    for folder in folders:
        check_training_folder(folder)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"no images in {folder}")
        for p in files:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if min(arr.shape[0], arr.shape[1]) < min_side:
                continue
            images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous())
    if not images:
        raise SystemExit(f"no image of at least {min_side} px on each side")
    return images


class CropSampler:
    """Random crops + horizontal flips, driven by a seeded torch.Generator."""

    def __init__(self, images, crop: int, batch: int, device: torch.device, seed: int):
        self.images = [im.to(device) for im in images]
        self.crop = crop
        self.batch = batch
        self.gen = torch.Generator()
        self.gen.manual_seed(seed)

    def __call__(self) -> torch.Tensor:
        c = self.crop
        idx = torch.randint(len(self.images), (self.batch,), generator=self.gen).tolist()
        out = []
        for i in idx:
            im = self.images[i]
            _, h, w = im.shape
            y = int(torch.randint(h - c + 1, (1,), generator=self.gen))
            x = int(torch.randint(w - c + 1, (1,), generator=self.gen))
            patch = im[:, y : y + c, x : x + c]
            if bool(torch.randint(2, (1,), generator=self.gen)):
                patch = patch.flip(-1)
            out.append(patch)
        return torch.stack(out).float().div_(255.0)


# --------------------------------------------------------------------------
# model / loss / optimisers
# --------------------------------------------------------------------------


def build_model(arch: str, N: int, M: int):
    from compressai.zoo.image import model_architectures

    if arch not in model_architectures:
        raise SystemExit(f"unknown architecture {arch!r}")
    return model_architectures[arch](N=N, M=M)


def rd_loss(out: dict, x: torch.Tensor, lmbda: float) -> dict:
    n, _, h, w = x.shape
    num_pixels = n * h * w
    bpp = sum(torch.log(lk).sum() / (-math.log(2) * num_pixels) for lk in out["likelihoods"].values())
    mse = torch.mean((out["x_hat"] - x) ** 2)
    loss = lmbda * 255.0**2 * mse + bpp
    return {"loss": loss, "bpp": bpp, "mse": mse}


def make_optimizers(model, lr: float, aux_lr: float):
    main = [p for n, p in model.named_parameters() if p.requires_grad and not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if p.requires_grad and n.endswith(".quantiles")]
    opt = torch.optim.Adam(main, lr=lr)
    aux_opt = torch.optim.Adam(aux, lr=aux_lr)
    return opt, aux_opt


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def safe_load(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """Untrusted checkpoints: only plain containers of tensors/numbers/strings."""
    return torch.load(path, weights_only=True, map_location=device)


def _float_state(sd: dict) -> dict:
    return {k: (v.float() if torch.is_floating_point(v) else v) for k, v in sd.items()}


def load_weights(model, sd: dict) -> None:
    """Load a flat state dict (training state's ``model`` or a shipped file)."""
    model.load_state_dict(_float_state(sd))


def export_model(model, path: Path, dtype: str = "float16") -> dict:
    """Write the shipping file; return its state dict (as stored)."""
    import copy

    m = copy.deepcopy(model).cpu().eval()
    param_names = {n for n, _ in m.named_parameters()}
    if dtype == "float16":
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(p.half().float())
    m.update(force=True)
    sd = {}
    for k, v in m.state_dict().items():
        v = v.detach().clone()
        if dtype == "float16" and k in param_names and torch.is_floating_point(v):
            v = v.half()
        sd[k] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(sd, tmp)
    os.replace(tmp, path)
    return sd


# --------------------------------------------------------------------------
# training loop
# --------------------------------------------------------------------------


def save_state(path: Path, model, opt, aux_opt, step, elapsed, config, sampler) -> None:
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "aux_optimizer": aux_opt.state_dict(),
        "step": int(step),
        "elapsed": float(elapsed),
        "config": config,
        "sampler_rng": sampler.gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _lr_at(args, frac: float) -> float:
    """Constant LR, divided by 10 for the last ``--lr-drop`` fraction."""
    if args.lr_drop > 0 and frac >= 1.0 - args.lr_drop:
        return args.lr * 0.1
    return args.lr


def setup_device(args) -> torch.device:
    """Seed torch, set the CPU thread count and pick the device (fast CUDA kernels on GPU)."""
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def rd_lambda(args) -> float:
    """The run's lambda: ``--lmbda`` if given, else CompressAI's value for ``--quality``."""
    return args.lmbda if args.lmbda is not None else LAMBDAS_MSE[args.quality]


def model_widths(args) -> tuple[int, int]:
    """``(N, M)``: the flags where given, else the architecture's compact default widths."""
    N, M = args.N, args.M
    if N is None or M is None:
        dN, dM = DEFAULT_WIDTHS.get(args.arch, (128, 192))
        N = N or dN
        M = M or dM
    return N, M


def load_resume_state(args, N: int, M: int) -> dict | None:
    """The training state in ``--out`` when ``--resume`` is set and it exists; it must match the run."""
    if not (args.resume and args.out and Path(args.out).exists()):
        return None
    state = safe_load(args.out)
    cfg = state["config"]
    if cfg["architecture"] != args.arch or cfg["N"] != N or cfg["M"] != M:
        raise SystemExit(f"{args.out} holds {cfg['architecture']} N={cfg['N']} M={cfg['M']}")
    return state


def _is_coder_table(key: str) -> bool:
    return any(s in key for s in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"))


def init_from_checkpoint(model, path: str) -> str:
    """Load ``--init`` weights (training state or shipped file) into ``model``; return its id.

    The entropy-coder tables of shipped files (incl. ``scale_table``) are dropped:
    ``update()`` rebuilds them."""
    init = safe_load(path)
    sd = init["model"] if isinstance(init, dict) and "model" in init and isinstance(init["model"], dict) else init
    finetuned_from = None
    if isinstance(init, dict) and "config" in init:
        finetuned_from = init["config"].get("id")
    sd = {k: v for k, v in sd.items() if not _is_coder_table(k)}
    missing, unexpected = torch.nn.Module.load_state_dict(model, _float_state(sd), strict=False)
    bad = [k for k in missing if not _is_coder_table(k)]
    if bad or unexpected:
        raise SystemExit(f"--init {path}: missing {bad[:5]} unexpected {list(unexpected)[:5]}")
    if finetuned_from is None:
        finetuned_from = Path(path).stem
    return finetuned_from


def build_training_model(args, N: int, M: int, resuming: bool, device: torch.device):
    """The model in training mode on ``device`` (from ``--init`` unless resuming) and the id
    of the checkpoint it was initialised from (``None`` for a fresh start)."""
    model = build_model(args.arch, N, M)
    finetuned_from = None
    if args.init and not resuming:
        finetuned_from = init_from_checkpoint(model, args.init)
    model.to(device).train()
    return model, finetuned_from


def run_config(args, lmbda: float, N: int, M: int, finetuned_from, device: torch.device) -> dict:
    """The run's configuration record, stored in the training state."""
    return {
        "id": f"{args.arch}@q{args.quality}" if args.lmbda is None else f"{args.arch}@l{lmbda}",
        "architecture": args.arch,
        "quality": int(args.quality) if args.quality is not None else None,
        "N": int(N),
        "M": int(M),
        "lambda": float(lmbda),
        "crop": int(args.crop),
        "batch_size": int(args.batch_size),
        "lr": float(args.lr),
        "aux_lr": float(args.aux_lr),
        "seed": int(args.seed),
        "training_data": [Path(d).name for d in args.data],
        "finetuned_from": finetuned_from,
        "device": device_label(device),
    }


def restore_training_state(
    args, state: dict, model, opt, aux_opt, sampler, config: dict, device: torch.device
) -> tuple[int, float]:
    """Put a resumed run's weights, optimisers and RNGs back; return its ``(step, elapsed)``."""
    load_weights(model, state["model"])
    model.to(device).train()
    opt.load_state_dict(state["optimizer"])
    aux_opt.load_state_dict(state["aux_optimizer"])
    step = int(state["step"])
    elapsed = float(state["elapsed"])
    sampler.gen.set_state(state["sampler_rng"])
    torch.set_rng_state(state["torch_rng"])
    config["finetuned_from"] = state["config"].get("finetuned_from")
    print(f"resumed {args.out} at step {step} ({elapsed:.0f} s)", flush=True)
    return step, elapsed


def _fraction_done(args, step: int, t_start: float) -> float:
    """Progress of the run: the larger of the step fraction and the time fraction."""
    fs = step / args.steps if args.steps else 0.0
    ft = (time.time() - t_start) / args.time_limit if args.time_limit else 0.0
    return max(fs, ft)


def _finished(args, step: int, t_start: float) -> bool:
    if args.steps and step >= args.steps:
        return True
    return bool(args.time_limit and time.time() - t_start >= args.time_limit)


def train_step(model, opt, aux_opt, x: torch.Tensor, lmbda: float, clip_max_norm: float):
    """One update of both optimisers on batch ``x``; return ``(losses, aux_loss)``.

    When the loss is not finite nothing is updated and ``aux_loss`` is ``None``."""
    opt.zero_grad(set_to_none=True)
    aux_opt.zero_grad(set_to_none=True)
    out = model(x)
    losses = rd_loss(out, x, lmbda)
    if not torch.isfinite(losses["loss"]):
        return losses, None
    losses["loss"].backward()
    if clip_max_norm > 0:
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip_max_norm)
    opt.step()
    aux_loss = model.aux_loss()
    aux_loss.backward()
    aux_opt.step()
    return losses, aux_loss


def print_progress(args, step: int, t_start: float, lr: float, losses: dict, aux_loss, ema: dict, is_tty: bool) -> None:
    """Fold this step's values into the running averages ``ema`` and print one progress line."""
    vals = {
        "loss": float(losses["loss"]),
        "bpp": float(losses["bpp"]),
        "psnr": -10 * math.log10(max(float(losses["mse"]), 1e-10)),
        "aux": float(aux_loss),
    }
    for k, v in vals.items():
        ema[k] = v if k not in ema else 0.9 * ema[k] + 0.1 * v
    el = time.time() - t_start
    total = f"/{args.steps}" if args.steps else ""
    pct = 100 * _fraction_done(args, step, t_start)
    line = (
        f"[{pct:5.1f}%] step {step}{total} {el:6.0f}s lr {lr:.0e} "
        f"loss {ema['loss']:.4f} bpp {ema['bpp']:.4f} psnr {ema['psnr']:.2f} aux {ema['aux']:.1f}"
    )
    print(("\r" + line) if is_tty else line, end="" if is_tty else "\n", flush=True)


def training_loop(
    args, model, opt, aux_opt, sampler, config: dict, lmbda: float, step: int, t_start: float, out_path: Path | None
) -> int:
    """Train until ``--steps`` / ``--time-limit``, saving ``--out`` every ``--save-every``
    seconds; return the final step."""
    last_save = time.time()
    ema = {}
    is_tty = sys.stdout.isatty()
    nonfinite = 0
    while not _finished(args, step, t_start):
        lr = _lr_at(args, _fraction_done(args, step, t_start))
        for g in opt.param_groups:
            g["lr"] = lr
        x = sampler()
        losses, aux_loss = train_step(model, opt, aux_opt, x, lmbda, args.clip_max_norm)
        if aux_loss is None:
            nonfinite += 1
            if nonfinite > 20:
                raise SystemExit(f"loss not finite for {nonfinite} steps; stopping at step {step}")
            continue
        step += 1
        if step % args.log_every == 0 or step == 1:
            print_progress(args, step, t_start, lr, losses, aux_loss, ema, is_tty)
        if out_path and time.time() - last_save >= args.save_every:
            save_state(out_path, model, opt, aux_opt, step, time.time() - t_start, config, sampler)
            last_save = time.time()
    if is_tty:
        print()
    return step


def save_and_export(
    args, model, opt, aux_opt, sampler, config: dict, step: int, elapsed: float, out_path: Path | None
) -> None:
    """Record the run's length in ``config``, write ``--out`` and the ``--export`` shipping file."""
    config["steps"] = int(step)
    config["train_seconds"] = round(float(elapsed), 1)
    if out_path:
        save_state(out_path, model, opt, aux_opt, step, elapsed, config, sampler)
        print(f"saved training state {out_path} (step {step}, {elapsed:.0f} s)", flush=True)
    if args.export:
        model.eval()
        export_model(model, Path(args.export), args.export_dtype)
        print(f"exported {args.export} ({Path(args.export).stat().st_size / 2**20:.2f} MiB)", flush=True)


def train(args) -> int:
    device = setup_device(args)
    lmbda = rd_lambda(args)
    N, M = model_widths(args)
    resume_state = load_resume_state(args, N, M)
    model, finetuned_from = build_training_model(args, N, M, resume_state is not None, device)
    opt, aux_opt = make_optimizers(model, args.lr, args.aux_lr)
    step, elapsed = 0, 0.0
    images = load_images([Path(d) for d in args.data], args.crop)
    sampler = CropSampler(images, args.crop, args.batch_size, device, args.seed)
    config = run_config(args, lmbda, N, M, finetuned_from, device)
    if resume_state is not None:
        step, elapsed = restore_training_state(args, resume_state, model, opt, aux_opt, sampler, config, device)

    t_start = time.time() - elapsed
    out_path = Path(args.out) if args.out else None
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"training {config['id']} N={N} M={M} lambda={lmbda} params={n_params} "
        f"images={len(images)} crop={args.crop} batch={args.batch_size} device={config['device']}",
        flush=True,
    )
    if not args.steps and not args.time_limit:
        raise SystemExit("give --steps and/or --time-limit")
    step = training_loop(args, model, opt, aux_opt, sampler, config, lmbda, step, t_start, out_path)
    save_and_export(args, model, opt, aux_opt, sampler, config, step, time.time() - t_start, out_path)
    return 0


def export_only(args) -> int:
    state = safe_load(args.out)
    cfg = state["config"]
    model = build_model(cfg["architecture"], cfg["N"], cfg["M"])
    load_weights(model, state["model"])
    model.eval()
    export_model(model, Path(args.export), args.export_dtype)
    print(f"exported {args.export} from {args.out} (step {state['step']})")
    return 0


def pack_data(args) -> int:
    """Downscale (bicubic, long side <= --max-side) and re-encode the training
    folders as JPEG into --pack, e.g. to carry them to a GPU machine."""
    from PIL import Image

    out = Path(args.pack)
    n = 0
    for folder in map(Path, args.data):
        check_training_folder(folder)
        dst = out / folder.name
        dst.mkdir(parents=True, exist_ok=True)
        for p in sorted(q for q in folder.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES):
            with Image.open(p) as im:
                im = im.convert("RGB")
                w, h = im.size
                s = args.max_side / max(w, h)
                if s < 1:
                    im = im.resize((round(w * s), round(h * s)), Image.BICUBIC)
                if min(im.size) < args.crop:
                    continue
                im.save(dst / f"{p.stem}.jpg", quality=args.jpeg_quality)
                n += 1
    print(f"packed {n} images into {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    root = default_data_root()
    p = argparse.ArgumentParser(
        prog="python scripts/train.py",
        description=(
            "Train a compact CompressAI codec with loss lambda*255^2*MSE + bpp on random crops "
            "of training-only folders (never kodak/bsds/nips2017)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--arch", default="bmshj2018-hyperprior", choices=ARCHITECTURES, help="CompressAI architecture")
    p.add_argument(
        "--quality",
        type=int,
        default=3,
        choices=sorted(LAMBDAS_MSE),
        help="quality index; picks lambda from CompressAI's MSE ladder",
    )
    p.add_argument("--lmbda", type=float, default=None, help="explicit lambda (overrides --quality)")
    p.add_argument("--N", type=int, default=None, help="channel width N (default: per-architecture compact width)")
    p.add_argument("--M", type=int, default=None, help="latent channels M (default: per-architecture compact width)")
    p.add_argument(
        "--data",
        nargs="+",
        default=[str(root / d) for d in TRAINING_FOLDERS],
        help="training image folders (folders named kodak/bsds/nips2017 are refused)",
    )
    p.add_argument("--crop", type=int, default=256, help="random crop size (square)")
    p.add_argument("--batch-size", type=int, default=16, help="crops per step")
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps in total (0: no step limit)")
    p.add_argument(
        "--time-limit", type=float, default=0, help="stop after this many seconds of training in total (0: none)"
    )
    p.add_argument("--lr", type=float, default=1e-4, help="main Adam learning rate")
    p.add_argument(
        "--lr-drop",
        type=float,
        default=0.15,
        help="divide the LR by 10 for this final fraction of the run (of steps or time)",
    )
    p.add_argument("--aux-lr", type=float, default=1e-3, help="aux Adam learning rate (entropy bottleneck quantiles)")
    p.add_argument("--clip-max-norm", type=float, default=1.0, help="gradient clipping (0: off)")
    p.add_argument("--seed", type=int, default=0, help="seed for init and crop sampling")
    p.add_argument(
        "--device", default="auto", help="'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:1', ..."
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--out", default=None, help="resumable training state file (model + optimisers + step)")
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument(
        "--init",
        default=None,
        help="initialise weights from this checkpoint (training state or shipped file), e.g. to "
        "fine-tune a trained rate point to another lambda; optimisers start fresh",
    )
    p.add_argument("--save-every", type=float, default=120, help="seconds between saves of --out")
    p.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
    p.add_argument(
        "--export",
        default=None,
        help="write the shipping file here at the end (flat state_dict after update(force=True))",
    )
    p.add_argument(
        "--export-dtype",
        default="float16",
        choices=("float16", "float32"),
        help="storage dtype of learned parameters in --export",
    )
    p.add_argument("--export-only", action="store_true", help="no training: export --out to --export and exit")
    p.add_argument(
        "--pack",
        default=None,
        help="no training: write the --data folders, downscaled to --max-side and re-encoded as "
        "JPEG, into this folder (images smaller than --crop are dropped) and exit",
    )
    p.add_argument("--max-side", type=int, default=768, help="long side limit for --pack")
    p.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality for --pack")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.pack:
        return pack_data(args)
    if args.export_only:
        if not (args.out and args.export):
            raise SystemExit("--export-only needs --out and --export")
        return export_only(args)
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
