"""The shipped codec checkpoints still do what the manifest says.

Fast (well under a minute on 2 CPU cores): the manifest and files are checked
without data; with the Kodak images (``$NICROBUST_DATA/kodak`` or
``<repo>/../shared/data/kodak``) each model also codes 3 centre crops and one
full image with real bitstreams.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pytest_nicrobust.codecs.builtin.compressai_models import encoder_side_reconstruction

REPO = Path(__file__).resolve().parents[2]
CKPT_DIR = REPO / "pytest_nicrobust" / "checkpoints"
MANIFEST = CKPT_DIR / "manifest.json"
ARCHS = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean")
QUALITIES = (1, 2, 3)
LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067}
CROP_IMAGES = ("kodim01", "kodim13", "kodim23")
CROP = 256
# tolerance of the full-image re-measurement against the stored "check" numbers
# (bitstreams are deterministic on one machine; other CPUs / torch builds may
# round convolutions differently)
BPP_RTOL = 0.01
PSNR_ATOL = 0.05


def _data_root() -> Path | None:
    env = os.environ.get("NICROBUST_DATA")
    if env:
        return Path(env)
    default = REPO.parent / "shared" / "data"
    return default if default.exists() else None


def _kodak() -> Path:
    root = _data_root()
    if root is None or not (root / "kodak").is_dir():
        pytest.skip(
            "Kodak images not found: set NICROBUST_DATA to a folder containing kodak/ (default <repo>/../shared/data)"
        )
    return root / "kodak"


needs_data = pytest.mark.needs_data


@cache
def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def _entry(arch: str, q: int) -> dict:
    (e,) = [m for m in _manifest()["models"] if m["id"] == f"{arch}@q{q}"]
    return e


@cache
def _load(model_id: str):
    """The loading contract of docs/rd.md."""
    from compressai.zoo.image import model_architectures

    e = next(m for m in _manifest()["models"] if m["id"] == model_id)
    model = model_architectures[e["architecture"]](N=e["N"], M=e["M"])
    sd = torch.load(CKPT_DIR / e["file"], weights_only=True, map_location="cpu")
    sd = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in sd.items()}
    model.load_state_dict(sd)
    return model.eval()


def _read(path: Path) -> torch.Tensor:
    from PIL import Image

    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)


@cache
def _crops() -> tuple:
    kodak = _kodak()
    out = []
    for name in CROP_IMAGES:
        img = _read(kodak / f"{name}.png")
        h, w = img.shape[-2:]
        y, x = (h - CROP) // 2, (w - CROP) // 2
        out.append(img[..., y : y + CROP, x : x + CROP].contiguous())
    return tuple(out)


@torch.no_grad()
def _code(model, img_u8: torch.Tensor, exact: bool = False) -> dict:
    h, w = img_u8.shape[-2:]
    x = img_u8.float() / 255.0
    ph, pw = (-h) % 64, (-w) % 64
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
    enc = model.compress(xp)
    nbytes = sum(len(s) for strings in enc["strings"] for s in strings)
    x_hat = model.decompress(enc["strings"], enc["shape"])["x_hat"].clamp(0, 1)
    out = {"bpp": 8.0 * nbytes / (h * w)}
    if exact:
        out["exact"] = bool(torch.equal(encoder_side_reconstruction(model, xp), x_hat))
    rec = (x_hat[..., :h, :w] * 255.0).round()
    mse = torch.mean((rec - img_u8.float()) ** 2).item()
    out["psnr"] = 10 * math.log10(255.0**2 / mse)
    return out


@cache
def _crop_results(model_id: str) -> dict:
    model = _load(model_id)
    rs = [_code(model, c, exact=True) for c in _crops()]
    return {
        "bpp": float(np.mean([r["bpp"] for r in rs])),
        "psnr": float(np.mean([r["psnr"] for r in rs])),
        "exact": all(r["exact"] for r in rs),
    }


ALL = [(a, q) for a in ARCHS for q in QUALITIES]


# ---------------------------------------------------------------- no data needed


def test_manifest_lists_the_nine_models():
    ids = sorted(m["id"] for m in _manifest()["models"])
    assert ids == sorted(f"{a}@q{q}" for a, q in ALL)


@pytest.mark.parametrize("arch,q", ALL)
def test_manifest_entry_and_file(arch, q):
    e = _entry(arch, q)
    assert e["file"] == f"{arch}-q{q}.pt"
    assert e["architecture"] == arch and e["quality"] == q
    assert e["lambda"] == pytest.approx(LAMBDAS[q])
    assert set(e["training_data"]) == {"bsds_train", "sunhays80", "wikiphotos"}
    path = CKPT_DIR / e["file"]
    assert path.stat().st_size <= 4 * 2**20
    assert hashlib.sha256(path.read_bytes()).hexdigest() == e["sha256"]
    k = e["kodak"]
    assert k["images"] == 24 and k["exact_decode"]


@pytest.mark.parametrize("arch,q", ALL)
def test_manifest_beats_jpeg_at_same_bpp(arch, q):
    k = _entry(arch, q)["kodak"]
    assert k["psnr"] > k["jpeg_psnr_at_bpp"], (k["psnr"], k["jpeg_psnr_at_bpp"])


def test_total_size():
    total = sum((CKPT_DIR / m["file"]).stat().st_size for m in _manifest()["models"])
    assert total <= 40 * 2**20


@pytest.mark.parametrize("arch,q", ALL)
def test_files_are_flat_tensor_state_dicts_with_cdfs(arch, q):
    sd = torch.load(CKPT_DIR / _entry(arch, q)["file"], weights_only=True, map_location="cpu")
    assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
    cdf_keys = [k for k in sd if k.endswith("_quantized_cdf")]
    assert cdf_keys and all(sd[k].numel() > 0 for k in cdf_keys), "saved without update(force=True)"


@pytest.mark.parametrize("arch", ARCHS)
def test_manifest_ladder_monotone(arch):
    ks = [_entry(arch, q)["kodak"] for q in QUALITIES]
    assert [k["bpp"] for k in ks] == sorted(k["bpp"] for k in ks)
    assert [k["psnr"] for k in ks] == sorted(k["psnr"] for k in ks)


# ---------------------------------------------------------------- Kodak


@needs_data
@pytest.mark.parametrize("arch,q", ALL)
def test_decode_reproduces_encoder_reconstruction(arch, q):
    assert _crop_results(f"{arch}@q{q}")["exact"]


@needs_data
@pytest.mark.parametrize("arch", ARCHS)
def test_ladder_monotone_on_crops(arch):
    rs = [_crop_results(f"{arch}@q{q}") for q in QUALITIES]
    bpps, psnrs = [r["bpp"] for r in rs], [r["psnr"] for r in rs]
    assert bpps[0] < bpps[1] < bpps[2], bpps
    assert psnrs[0] < psnrs[1] < psnrs[2], psnrs


@needs_data
@pytest.mark.parametrize("arch,q", ALL)
def test_full_image_matches_manifest(arch, q):
    e = _entry(arch, q)
    check = e["check"]
    kodak = _kodak()
    model = _load(e["id"])
    rs = [_code(model, _read(kodak / f"{name}.png")) for name in check["images"]]
    bpp = float(np.mean([r["bpp"] for r in rs]))
    psnr = float(np.mean([r["psnr"] for r in rs]))
    assert bpp == pytest.approx(check["bpp"], rel=BPP_RTOL)
    assert psnr == pytest.approx(check["psnr"], abs=PSNR_ATOL)
