"""Every TIFF/PNG pixel mode is scaled by its own white level, or refused with the file named.

A 32-bit float TIFF in [0, 1] was read as 0..1 of 255 (an almost black image that passed)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pytest_nicrobust import DataError
from pytest_nicrobust.datasets import read_rgb

HALF = 128  # round(0.5 * 255)


@pytest.mark.parametrize(
    "name, array, mode",
    [
        ("f32.tif", np.full((4, 4), 0.5, np.float32), None),
        ("g16.png", np.full((4, 4), 32896, np.uint16), None),  # 32896 / 65535 * 255 = 128.0
        ("g16.tif", np.full((4, 4), 32896, np.uint16), None),
        ("g8.tif", np.full((4, 4), HALF, np.uint8), None),
        ("rgb8.tif", np.full((4, 4, 3), HALF, np.uint8), None),
        ("rgba8.png", np.full((4, 4, 4), HALF, np.uint8), None),
        ("cmyk.tif", np.full((4, 4, 4), [0, 0, 0, 127], np.uint8), "CMYK"),
    ],
)
def test_modes_are_scaled_by_their_white_level(tmp_path, name, array, mode):
    path = tmp_path / name
    Image.fromarray(array, mode=mode).save(path)
    pixels = read_rgb(str(path))
    assert pixels.dtype == np.uint8 and pixels.shape == (4, 4, 3)
    assert abs(int(pixels.mean()) - HALF) <= 1, (name, pixels.mean())


@pytest.mark.parametrize(
    "name, array, message",
    [
        ("hdr.tif", np.full((4, 4), 200.0, np.float32), r"32-bit float pixels outside \[0, 1\]"),
        ("nan.tif", np.full((4, 4), np.nan, np.float32), "NaN or infinity"),
        ("i32.tif", np.full((4, 4), 7, np.int32), r"pixel mode I \(32-bit samples\) has no known white level"),
    ],
)
def test_modes_without_a_white_level_are_refused_naming_the_file(tmp_path, name, array, message):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    with pytest.raises(DataError, match=message) as info:
        read_rgb(str(path))
    assert str(path) in str(info.value)
