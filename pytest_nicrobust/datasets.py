"""Image folders the suites evaluate on.

* ``kodak``, ``bsds``, ``nips2017``: sub-folders of the data root, given by
  ``--nicrobust-data`` or ``NICROBUST_DATA`` (e.g. ``../shared/data``);
* ``cityscapes``: the user's own copy, ``--nicrobust-cityscapes`` / ``NICROBUST_CITYSCAPES``
  (searched recursively, e.g. ``leftImg8bit/val``);
* ``skimage-photos``: colour photos bundled with scikit-image: needs nothing configured;
* any other name with ``path = "..."`` in the suite: a folder of your own.

Training-only folders (bsds_train, sunhays80, wikiphotos) are refused: the models
shipped with this project were trained on them.

Every image becomes 8-bit RGB: grayscale is replicated, alpha dropped, palettes
expanded, 16-bit scaled to 8 bits, 32-bit float read as [0, 1]; a mode with no known white
level (32-bit integers, float beyond [0, 1]) is refused with the file named (see
:func:`read_rgb`). Crops are central; images are never resized.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from . import DataError

EVALUATION = ("kodak", "bsds", "nips2017")
TRAINING_ONLY = ("bsds_train", "sunhays80", "wikiphotos")
BUNDLED = "skimage-photos"
_SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "ihc.png")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


@dataclass(frozen=True)
class Image:
    name: str
    pixels: np.ndarray  # (H, W, 3) uint8


def _skimage_dir() -> str:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset skimage-photos needs scikit-image installed (pip install scikit-image)")
    return os.path.join(list(spec.submodule_search_locations)[0], "data")


def dataset_folder(name: str, path: str | None, data_root: str | None, cityscapes_root: str | None) -> str:
    """Where a suite's dataset lives; a DataError says how to configure it when it cannot be found."""
    if path:
        folder = path
    elif name == BUNDLED:
        return _skimage_dir()
    elif name in TRAINING_ONLY:
        raise DataError(
            f"dataset {name!r} is training-only (the shipped codecs were trained on it); "
            f"evaluate on {', '.join(EVALUATION)} or your own folder"
        )
    elif name == "cityscapes":
        if not cityscapes_root:
            raise DataError(
                "dataset 'cityscapes' cannot be redistributed: point --nicrobust-cityscapes "
                "or NICROBUST_CITYSCAPES at your copy (e.g. leftImg8bit/val)"
            )
        folder = cityscapes_root
    elif name in EVALUATION:
        if not data_root:
            raise DataError(
                f"dataset {name!r}: no data root configured; pass --nicrobust-data DIR or set "
                f"NICROBUST_DATA to a folder holding {name}/"
            )
        folder = os.path.join(data_root, name)
    else:
        raise DataError(
            f'unknown dataset {name!r}: use {", ".join(EVALUATION + ("cityscapes", BUNDLED))} or give path = "..."'
        )
    if not os.path.isdir(folder):
        raise DataError(f"dataset {name!r}: folder {folder} does not exist")
    return folder


def list_images(folder: str, name: str) -> list[str]:
    if name == BUNDLED and os.path.realpath(folder) == os.path.realpath(_skimage_dir()):
        return [os.path.join(folder, f) for f in _SKIMAGE_PHOTOS if os.path.exists(os.path.join(folder, f))]
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise DataError(f"dataset {name!r}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return found


EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr")


def _bits(im) -> int | None:
    """Bits per sample a TIFF declares (tag 258), else None."""
    tags = getattr(im, "tag_v2", None)
    value = tags.get(258) if tags is not None else None
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    return int(value) if value else None


def _gray(arr: np.ndarray, white: float) -> np.ndarray:
    gray = np.clip(np.round(arr.astype(np.float64) / white * 255), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def read_rgb(path: str) -> np.ndarray:
    """Any common image file as (H, W, 3) uint8, each mode scaled by its own white level.

    8-bit modes (grayscale, palette, RGB, RGBA, CMYK, ...) convert directly (alpha dropped);
    16-bit integer samples (PNG or TIFF) divide by 65535; 32-bit float samples (TIFF mode ``F``)
    are taken as [0, 1] and refused when they leave it (or are NaN). Any other mode (32-bit
    integers, LAB, HSV) is refused with the file named: no white level is known for it.
    """
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            im.load()
            mode, bits = im.mode, _bits(im)
            if mode in EIGHT_BIT_MODES:
                if mode in ("P", "PA"):
                    im = im.convert("RGBA")
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
            if mode.startswith("I;16") or (mode == "I" and (im.format == "PNG" or bits == 16)):
                return _gray(np.asarray(im), 65535.0)
            if mode == "I" and bits == 8:
                return _gray(np.asarray(im), 255.0)
            if mode == "F":
                arr = np.asarray(im, dtype=np.float64)
                if not np.isfinite(arr).all():
                    raise DataError(f"image {path}: 32-bit float pixels hold NaN or infinity")
                if arr.min() < 0 or arr.max() > 1:
                    raise DataError(
                        f"image {path}: 32-bit float pixels outside [0, 1] (from {arr.min():.4g} to "
                        f"{arr.max():.4g}): no known white level; save it as 8- or 16-bit"
                    )
                return _gray(arr, 1.0)
            raise DataError(
                f"image {path}: pixel mode {mode}{f' ({bits}-bit samples)' if bits else ''} has no "
                "known white level; save it as 8- or 16-bit RGB or grayscale"
            )
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def center_crop(pixels: np.ndarray, size: int, name: str) -> np.ndarray:
    h, w = pixels.shape[:2]
    if h < size or w < size:
        raise DataError(f"image {name} is {w}x{h}, smaller than the requested crop {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return pixels[top : top + size, left : left + size]


def load_dataset(name: str, folder: str, count: int | None = None, crop: int | None = None, metrics=()) -> list[Image]:
    """The images of a data set; ``metrics`` (names) refuse images too small to be measured."""
    from .metrics.registry import min_side

    side, metric = min_side(metrics) if metrics else (1, "")
    paths = list_images(folder, name)
    if count is not None:
        if count > len(paths):
            raise DataError(f"dataset {name!r}: asked for {count} images, {folder} has {len(paths)}")
        paths = paths[:count]
    images = []
    for path in paths:
        label = os.path.splitext(os.path.relpath(path, folder))[0]
        pixels = read_rgb(path)
        if crop:
            pixels = center_crop(pixels, crop, path)
        elif min(pixels.shape[:2]) < side:
            h, w = pixels.shape[:2]
            raise DataError(f"image {path} is {w}x{h}: too small for {metric}, which needs at least {side}x{side}")
        images.append(Image(label, np.ascontiguousarray(pixels)))
    return images


def to_tensor(images: list[Image]):
    """Stack equally sized images into (N,3,H,W) float32 in [0,1]."""
    import torch

    arr = np.stack([im.pixels for im in images]).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
