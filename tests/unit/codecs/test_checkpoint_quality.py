"""A checkpoint known for one quality, labelled with another, is an explicit warning (it was silent)."""

from __future__ import annotations

import shutil
import warnings

import pytest

from pytest_nicrobust import NicrobustWarning
from pytest_nicrobust.codecs import load_codec
from pytest_nicrobust.codecs.builtin.shipped import shipped_entry, shipped_path


def test_a_shipped_q3_checkpoint_labelled_q1_warns(tmp_path):
    copy = tmp_path / "my-model.pt"
    shutil.copy(shipped_path(shipped_entry("bmshj2018-factorized", 3)), copy)
    with pytest.warns(
        NicrobustWarning,
        match=r"codec mine\[q1\]: its weights .*my-model.pt\) are the shipped "
        r"bmshj2018-factorized@q3 checkpoint \(SHA-256 match\), labelled q1",
    ):
        load_codec("bmshj2018-factorized", str(copy), 1, "cpu", "mine")


def test_the_same_checkpoint_under_its_own_quality_is_quiet(tmp_path):
    copy = tmp_path / "my-model.pt"
    shutil.copy(shipped_path(shipped_entry("bmshj2018-factorized", 3)), copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NicrobustWarning)
        load_codec("bmshj2018-factorized", str(copy), 3, "cpu", "mine")
