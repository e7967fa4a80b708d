"""Configuration mistakes that were silent or a traceback, each one clear line now: a suite file
that is not UTF-8, a negative limit, a dataset name that would break the test ids."""

from __future__ import annotations

import pytest

from pytest_nicrobust.config.errors import SuiteError, ThresholdsError
from pytest_nicrobust.config.suite import parse_suite
from pytest_nicrobust.config.thresholds import load_thresholds

SUITE = """
[[codecs]]
model = "bmshj2018-factorized"
name = "tiny"
weights = "random"
qualities = [1]

[[attacks]]
name = "pgd"

[[datasets]]
name = "{name}"
"""


def test_a_suite_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(SUITE.format(name="skimage-photos").encode() + "# caf\xe9\n".encode("latin-1"))
    with pytest.raises(SuiteError, match=r"latin1.toml: not UTF-8 text \(byte \d+\); TOML files are UTF-8$"):
        parse_suite(str(path))


@pytest.mark.parametrize("name", ["my photos", "a::b", "x[1]", "one,two"])
def test_a_dataset_name_that_would_break_the_ids_is_refused(tmp_path, name):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(name=name))
    with pytest.raises(SuiteError) as info:
        parse_suite(str(path))
    assert str(info.value).startswith(f"{path}: datasets[0].name: {name!r}: a dataset name has no spaces")


def test_a_plain_dataset_name_is_accepted(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(name="skimage-photos"))
    assert {c.dataset.name for c in parse_suite(str(path)).cases} == {"skimage-photos"}


@pytest.mark.parametrize(
    "body, key",
    [
        ("[defaults]\ndelta_psnr = -1.0\n", "defaults.delta_psnr"),
        ('[overrides.x]\nmatch = { codec = "*" }\nbitrate_increase = -0.5\n', "overrides.x.bitrate_increase"),
    ],
)
def test_a_negative_limit_is_one_line(tmp_path, body, key):
    path = tmp_path / "thresholds.toml"
    path.write_text(body)
    with pytest.raises(
        ThresholdsError,
        match=rf"thresholds.toml: {key}: -[\d.]+ is negative; a limit below 0 passes "
        r"only when the attack improves the image",
    ):
        load_thresholds(str(path))


def test_a_zero_limit_is_accepted(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text("[defaults]\ndelta_psnr = 0\n")
    assert (
        load_thresholds(str(path))
        .limits_for({"codec": "c", "attack": "pgd", "objective": "recon_error", "dataset": "d"})["delta_psnr"]
        .value
        == 0
    )


def test_a_dataset_folder_that_does_not_exist_is_one_collection_line_naming_the_key(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(name="ours") + 'path = "photos"\n')
    with pytest.raises(SuiteError) as info:
        parse_suite(str(path))
    assert str(info.value) == f"{path}: datasets[0].path: folder {tmp_path / 'photos'} does not exist"
    (tmp_path / "photos").mkdir()
    assert {c.dataset.path for c in parse_suite(str(path)).cases} == {str(tmp_path / "photos")}


def test_a_checkpoint_that_is_a_folder_or_missing_is_one_collection_line(tmp_path):
    path = tmp_path / "s.toml"
    for weights, line in (
        (".", f"codecs[0].weights: {tmp_path} is a folder, not a checkpoint file"),
        ("ckpt-q{quality}.pt", f"codecs[0].weights: checkpoint {tmp_path}/ckpt-q1.pt (quality 1) does not exist"),
    ):
        path.write_text(SUITE.format(name="skimage-photos").replace('weights = "random"', f'weights = "{weights}"'))
        with pytest.raises(SuiteError) as info:
            parse_suite(str(path))
        assert str(info.value).startswith(f"{path}: {line}"), str(info.value)
