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
expanded, 16-bit scaled to 8 bits. Crops are central; images are never resized.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from . import DataError

EVALUATION = ("kodak", "bsds", "nips2017")
TRAINING_ONLY = ("bsds_train", "sunhays80", "wikiphotos")
BUILTIN = "skimage-photos"
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
    elif name == BUILTIN:
        return _skimage_dir()
    elif name in TRAINING_ONLY:
        raise DataError(f"dataset {name!r} is training-only (the shipped codecs were trained on it); "
                        f"evaluate on {', '.join(EVALUATION)} or your own folder")
    elif name == "cityscapes":
        if not cityscapes_root:
            raise DataError("dataset 'cityscapes' cannot be redistributed: point --nicrobust-cityscapes "
                            "or NICROBUST_CITYSCAPES at your copy (e.g. leftImg8bit/val)")
        folder = cityscapes_root
    elif name in EVALUATION:
        if not data_root:
            raise DataError(f"dataset {name!r}: no data root configured; pass --nicrobust-data DIR or set "
                            f"NICROBUST_DATA to a folder holding {name}/")
        folder = os.path.join(data_root, name)
    else:
        raise DataError(f"unknown dataset {name!r}: use {', '.join(EVALUATION + ('cityscapes', BUILTIN))} "
                        f"or give path = \"...\"")
    if not os.path.isdir(folder):
        raise DataError(f"dataset {name!r}: folder {folder} does not exist")
    return folder


def list_images(folder: str, name: str) -> list[str]:
    if name == BUILTIN and os.path.realpath(folder) == os.path.realpath(_skimage_dir()):
        return [os.path.join(folder, f) for f in _SKIMAGE_PHOTOS if os.path.exists(os.path.join(folder, f))]
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise DataError(f"dataset {name!r}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return found


def read_rgb(path: str) -> np.ndarray:
    """Any common image file as (H, W, 3) uint8."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                scale = 65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0
                gray = np.clip(np.round(arr / scale * 255), 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:
        raise DataError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def center_crop(pixels: np.ndarray, size: int, name: str) -> np.ndarray:
    h, w = pixels.shape[:2]
    if h < size or w < size:
        raise DataError(f"image {name} is {w}x{h}, smaller than the requested crop {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return pixels[top:top + size, left:left + size]


def load_dataset(name: str, folder: str, count: int | None = None, crop: int | None = None,
                 metrics=()) -> list[Image]:
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
