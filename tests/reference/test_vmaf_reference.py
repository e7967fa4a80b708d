"""vmaf() against Netflix libvmaf (ffmpeg's libvmaf filter from imageio-ffmpeg).

libvmaf side: both images are written as 8-bit RGB PNG and run through
``format=yuv420p`` and ``libvmaf=model=version=vmaf_v0.6.1`` (main input =
distorted, second input = reference), one frame, score read from the JSON log.

Run ``python tests/test_vmaf_reference.py`` to print the agreement table used
in docs/vmaf.md.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from pytest_nicrobust import metrics as M

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 0.1  # VMAF points, per pair (docs/vmaf.md)

# (image, crop box (left, top, right, bottom) or None for the full 768x512 image)
IMAGES = [
    ("kodim01", None),
    ("kodim05", (256, 128, 512, 384)),
    ("kodim13", (0, 0, 256, 256)),
    ("kodim23", (384, 192, 640, 448)),
]
DISTORTIONS = [
    ("jpeg", 10),
    ("jpeg", 30),
    ("jpeg", 70),
    ("noise", 2),
    ("noise", 8),
    ("noise", 20),
    ("blur", 0.8),
    ("blur", 2),
]
PAIR_IDS = [f"{name}{'' if box is None else '-crop'}-{kind}{p}" for name, box in IMAGES for kind, p in DISTORTIONS]

pytestmark = pytest.mark.needs_data


def _data_dir() -> Path | None:
    env = os.environ.get("NICROBUST_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root if (root / "kodak").is_dir() else None


@cache
def _ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return None
    try:
        out = subprocess.run([exe, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if " libvmaf " in out else None


def _require():
    data = _data_dir()
    if data is None:
        pytest.skip("Kodak images not found: set NICROBUST_DATA to a folder containing kodak/ (default ../shared/data)")
    exe = _ffmpeg()
    if exe is None:
        pytest.skip("ffmpeg with the libvmaf filter not available (imageio-ffmpeg missing or built without libvmaf)")
    return data, exe


def _load(data: Path, name: str, box) -> np.ndarray:
    img = Image.open(data / "kodak" / f"{name}.png").convert("RGB")
    if box is not None:
        img = img.crop(box)
    return np.asarray(img, dtype=np.uint8)


def _distort(img: np.ndarray, kind: str, p, seed: int) -> np.ndarray:
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(p))
        buf.seek(0)
        return np.asarray(Image.open(buf).convert("RGB"), dtype=np.uint8)
    if kind == "noise":
        rng = np.random.default_rng(seed)
        noisy = img.astype(np.float64) + rng.normal(0.0, float(p), img.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    if kind == "blur":
        return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=p)), dtype=np.uint8)
    raise ValueError(kind)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0


def libvmaf_score(exe: str, reference: np.ndarray, distorted: np.ndarray) -> float:
    """VMAF of one pair of 8-bit RGB images with ffmpeg's libvmaf filter (vmaf_v0.6.1)."""
    with tempfile.TemporaryDirectory() as tmp:
        ref_png, dist_png, log = (os.path.join(tmp, f) for f in ("ref.png", "dist.png", "log.json"))
        Image.fromarray(reference).save(ref_png)
        Image.fromarray(distorted).save(dist_png)
        graph = (
            "[0:v]format=yuv420p[dis];[1:v]format=yuv420p[ref];"
            f"[dis][ref]libvmaf=model=version=vmaf_v0.6.1:n_threads=1:log_fmt=json:log_path={log}"
        )
        cmd = [exe, "-nostdin", "-v", "error", "-i", dist_png, "-i", ref_png, "-lavfi", graph, "-f", "null", "-"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg libvmaf failed: {proc.stderr[-2000:]}")
        with open(log) as f:
            frames = json.load(f)["frames"]
    assert len(frames) == 1, f"expected one frame, libvmaf scored {len(frames)}"
    return float(frames[0]["metrics"]["vmaf"])


def ffmpeg_luma(exe: str, img: np.ndarray) -> np.ndarray:
    """Y plane that ``ffmpeg -vf format=yuv420p`` produces from an 8-bit RGB image."""
    h, w, _ = img.shape
    raw = subprocess.run(
        [
            exe,
            "-nostdin",
            "-v",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{w}x{h}",
            "-i",
            "-",
            "-vf",
            "format=yuv420p",
            "-f",
            "rawvideo",
            "-",
        ],
        input=img.tobytes(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return np.frombuffer(raw[: w * h], dtype=np.uint8).reshape(h, w)


@lru_cache(maxsize=1)
def _all_pairs(data: Path, exe: str):
    """[(pair_id, kind, torch score, libvmaf score)] for every image x distortion."""
    jobs = []
    for i, (name, box) in enumerate(IMAGES):
        ref = _load(data, name, box)
        for j, (kind, p) in enumerate(DISTORTIONS):
            jobs.append((kind, ref, _distort(ref, kind, p, seed=100 * i + j)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        lib = list(pool.map(lambda job: libvmaf_score(exe, job[1], job[2]), jobs))
    ours = [M.vmaf(_to_tensor(ref), _to_tensor(dist)).item() for _, ref, dist in jobs]
    return [(pid, job[0], o, lb) for pid, job, o, lb in zip(PAIR_IDS, jobs, ours, lib)]


@pytest.fixture(scope="module")
def pairs():
    data, exe = _require()
    return {pid: (kind, ours, lib) for pid, kind, ours, lib in _all_pairs(data, exe)}


@pytest.mark.parametrize("pair_id", PAIR_IDS)
def test_vmaf_matches_libvmaf(pairs, pair_id):
    _, ours, lib = pairs[pair_id]
    assert abs(ours - lib) <= TOLERANCE, f"{pair_id}: vmaf-torch {ours:.4f} vs libvmaf {lib:.4f}"


def test_pairs_cover_a_wide_quality_range(pairs):
    lib = [lib for _, _, lib in pairs.values()]
    assert min(lib) < 40 and max(lib) > 90


def test_identical_images_match_libvmaf():
    data, exe = _require()
    img = _load(data, "kodim05", (256, 128, 512, 384))
    ours = M.vmaf(_to_tensor(img), _to_tensor(img)).item()
    lib = libvmaf_score(exe, img, img)
    assert abs(ours - lib) <= TOLERANCE
    assert abs(ours - M.VMAF_IDENTICAL) < 1e-3


def test_luma_is_bit_exact_with_ffmpeg_yuv420p():
    data, exe = _require()
    rng = np.random.default_rng(0)
    images = [
        _load(data, "kodim01", None),
        _load(data, "kodim04", (0, 0, 256, 256)),
        rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8),  # 65536 random colours
    ]
    for img in images:
        expected = ffmpeg_luma(exe, img)
        got = M.rgb_to_luma(_to_tensor(img))[0, 0].numpy().astype(np.uint8)
        mismatch = int((got != expected).sum())
        assert mismatch == 0, f"{mismatch} of {expected.size} luma values differ from ffmpeg"


def _table() -> str:  # pragma: no cover - documentation helper
    data, exe = _data_dir(), _ffmpeg()
    if data is None or exe is None:
        raise SystemExit("needs Kodak data and ffmpeg with libvmaf")
    rows = _all_pairs(data, exe)
    lines = ["| distortion | pairs | max abs diff | mean abs diff |", "|---|---|---|---|"]
    groups = {}
    for pid, kind, ours, lib in rows:
        groups.setdefault(kind, []).append(abs(ours - lib))
        print(f"{pid:32s} torch {ours:8.4f} libvmaf {lib:8.4f} diff {ours - lib:+.4f}")
    groups["all"] = [abs(o - lb) for _, _, o, lb in rows]
    for kind, diffs in groups.items():
        lines.append(f"| {kind} | {len(diffs)} | {max(diffs):.4f} | {sum(diffs) / len(diffs):.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(_table())
