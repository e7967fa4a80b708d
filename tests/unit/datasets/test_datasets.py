"""Image folders: RGB conversion of every common mode, crops, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pytest_nicrobust import DataError
from pytest_nicrobust.datasets import BUNDLED, dataset_folder, load_dataset, read_rgb, to_tensor


def _save(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


def test_grayscale_rgba_palette_and_16bit_become_rgb(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    _save(tmp_path / "gray.png", gray)
    _save(tmp_path / "rgba.png", rgba)
    Image.fromarray(rgba[..., :3]).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "pal.png")
    deep = gray.astype(np.uint16) * 257
    Image.fromarray(deep).save(tmp_path / "deep16.png")

    assert np.array_equal(read_rgb(tmp_path / "gray.png"), np.repeat(gray[..., None], 3, axis=2))
    assert np.array_equal(read_rgb(tmp_path / "rgba.png"), rgba[..., :3])
    pal = read_rgb(tmp_path / "pal.png")
    assert pal.shape == (20, 30, 3) and pal.dtype == np.uint8
    assert np.array_equal(read_rgb(tmp_path / "deep16.png"), np.repeat(gray[..., None], 3, axis=2))


def test_load_dataset_sorts_counts_and_crops(tmp_path):
    for i in range(3):
        _save(tmp_path / f"im{i}.png", np.full((40, 50, 3), i * 10, np.uint8))
    images = load_dataset("mine", str(tmp_path), count=2, crop=32)
    assert [im.name for im in images] == ["im0", "im1"]
    assert images[1].pixels.shape == (32, 32, 3) and images[1].pixels[0, 0, 0] == 10
    x = to_tensor(images)
    assert x.shape == (2, 3, 32, 32) and float(x.max()) == pytest.approx(10 / 255)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "no images"),
        (lambda p: (p / "broken.png").write_bytes(b"not a png"), "cannot read image"),
        (lambda p: _save(p / "small.png", np.zeros((10, 10, 3), np.uint8)), "smaller than the requested crop 32"),
    ],
)
def test_bad_folders_give_clear_errors(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("mine", str(tmp_path), crop=32)
    assert "mine" in str(info.value) or str(tmp_path) in str(info.value)


def test_folder_resolution(tmp_path):
    (tmp_path / "kodak").mkdir()
    assert dataset_folder("kodak", None, str(tmp_path), None) == str(tmp_path / "kodak")
    with pytest.raises(DataError, match="NICROBUST_DATA"):
        dataset_folder("kodak", None, None, None)
    with pytest.raises(DataError, match="does not exist"):
        dataset_folder("bsds", None, str(tmp_path), None)
    with pytest.raises(DataError, match="training-only"):
        dataset_folder("sunhays80", None, str(tmp_path), None)
    with pytest.raises(DataError, match="NICROBUST_CITYSCAPES"):
        dataset_folder("cityscapes", None, str(tmp_path), None)


def test_builtin_photos_need_no_configuration():
    images = load_dataset(BUNDLED, dataset_folder(BUNDLED, None, None, None), count=3, crop=64)
    assert [im.name for im in images] == ["astronaut", "coffee", "chelsea"]
    assert all(im.pixels.shape == (64, 64, 3) for im in images)
