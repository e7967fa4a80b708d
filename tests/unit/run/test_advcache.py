"""A cache entry of the wrong size, shape or dtype is a warned miss, never a crash of later runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pytest_nicrobust import NicrobustWarning
from pytest_nicrobust.attacks import build_attack
from pytest_nicrobust.datasets import Image as DataImage
from pytest_nicrobust.datasets import to_tensor
from pytest_nicrobust.run.advcache import AdvCache

KEY = "ab" + "0" * 62


def _budget_check(clean):
    """What the runner passes: the attack's budget check against the clean image."""
    attack = build_attack("pgd", None, "eps7", "recon_error", 0)
    x = to_tensor([DataImage("clean", clean)])
    return lambda pixels: attack.budget_violation(x, to_tensor([DataImage("", pixels)]))


def test_an_entry_of_the_wrong_size_is_a_warned_miss(tmp_path):
    cache = AdvCache(str(tmp_path))
    clean = np.zeros((64, 64, 3), np.uint8)
    cache.put(KEY, np.zeros((32, 32, 3), np.uint8))  # another image's x' under this key
    with pytest.warns(NicrobustWarning, match=r"does not fit the clean image.*made again"):
        assert cache.get(KEY, _budget_check(clean)) is None
    with pytest.warns(NicrobustWarning, match=r"is 32x32, not the image's 64x48; made again"):
        assert cache.get(KEY, None, shape=(48, 64)) is None


@pytest.mark.parametrize("mode, dtype", [("L", np.uint8), ("I;16", np.uint16), ("RGBA", np.uint8)])
def test_an_entry_that_is_not_8bit_rgb_is_a_warned_miss(tmp_path, mode, dtype):
    cache = AdvCache(str(tmp_path))
    cache.put(KEY, np.zeros((8, 8, 3), np.uint8))
    shape = (8, 8, 4) if mode == "RGBA" else (8, 8)
    Image.fromarray(np.zeros(shape, dtype), mode=mode if mode != "I;16" else None).save(cache._path(KEY))
    with pytest.warns(NicrobustWarning, match=r"not 8-bit RGB; made again"):
        assert cache.get(KEY) is None


def test_a_good_entry_is_returned(tmp_path):
    cache = AdvCache(str(tmp_path))
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    cache.put(KEY, pixels)
    got = cache.get(KEY, _budget_check(pixels), shape=(64, 64))
    assert got is not None and np.array_equal(got, pixels) and torch.is_tensor(to_tensor([DataImage("x", got)]))


def test_a_wait_on_another_workers_entry_names_who_makes_it(tmp_path):
    import threading

    cache = AdvCache(str(tmp_path))
    held, release, blocked = threading.Event(), threading.Event(), []

    def holder():
        with cache.making(KEY, "gw1 (suites/s.toml::tiny[q1-pgd-eps7-recon_error-photos-none])"):
            held.set()
            release.wait(30)

    def waiter():
        with cache.making(KEY, "gw0 (suites/s.toml::tiny[q1-worst-case-photos-none])") as lock:
            blocked.append(lock.waited)

    first = threading.Thread(target=holder)
    first.start()
    assert held.wait(30)
    second = threading.Thread(target=waiter)
    second.start()
    for _ in range(300):
        if cache.waiting():
            break
        threading.Event().wait(0.01)
    assert cache.waiting() == ["gw1 (suites/s.toml::tiny[q1-pgd-eps7-recon_error-photos-none])"]
    release.set()
    first.join(30)
    second.join(30)
    assert blocked and blocked[0] > 0 and cache.waiting() == []
