"""A suite's [bitstreams] table (config/suite.py, config/cases.py): one decoder test per codec and
quality, ids codec[q-bitstream], and one clear line for each mistake."""

from __future__ import annotations

import pytest
from helpers import write_suite

from pytest_nicrobust.config.cases import BITSTREAM_DEFAULTS, TEST_KINDS
from pytest_nicrobust.config.errors import SuiteError
from pytest_nicrobust.config.suite import parse_suite


def suite(tmp_path, table: str):
    path = write_suite(tmp_path, checkpoint="random")
    (path.parent / "photos").mkdir(exist_ok=True)  # a dataset folder must exist (issue 31)
    path.write_text(path.read_text() + f'\n[[datasets]]\nname = "mine"\npath = "photos"\n\n{table}\n')
    return parse_suite(str(path))


def test_each_codec_and_quality_gets_one_bitstream_test_and_classical_ones_when_asked(tmp_path):
    tests = suite(tmp_path, "[bitstreams]\nclassical = ['webp']\nexamples = 50").bitstreams
    assert [t.name for t in tests] == [
        "tiny[q1-bitstream]",
        "tiny[q2-bitstream]",
        "webp[bitstream]",
    ]
    first = tests[0]
    assert first.kind == "bitstream" and first.kind in TEST_KINDS
    assert first.parameters == {
        "codec": "tiny",
        "bitrate": "q1",
        "attack": "bitstream",
        "objective": "none",
        "dataset": "skimage-photos",
    }
    assert (first.dataset.images, first.dataset.crop) == (2, 64)  # the table's defaults, not the suite's 1
    assert first.model_key == "tiny:random:1" and tests[2].model_key == "classical:webp"
    assert first.settings.examples == 50 and first.settings.time_limit == BITSTREAM_DEFAULTS.time_limit
    assert "bitstream" in first.markers and tests[2].parameters["bitrate"] == ""


def test_no_table_no_bitstream_tests_and_every_key_is_read(tmp_path):
    assert suite(tmp_path, "").bitstreams == []
    table = "[bitstreams]\nexamples = 9\ntime_limit = 0.5\nbudget = 30\nimages = 1\ncrop = 128\nmax_pixels = 99999\n"
    table += "classical = true\ndataset = 'mine'"
    tests = suite(tmp_path, table).bitstreams
    s = tests[0].settings
    assert (s.examples, s.time_limit, s.budget, s.images, s.crop, s.max_pixels) == (9, 0.5, 30.0, 1, 128, 99999)
    assert s.classical == ("jpeg", "webp", "jpeg2000") and len(tests) == 5
    assert tests[0].dataset.name == "mine" and tests[0].dataset.path.endswith("photos")


@pytest.mark.parametrize(
    "table, said",
    [
        ("examples = 0", "bitstreams.examples: must be positive, got 0"),
        ("time_limit = -1", "bitstreams.time_limit: must be positive, got -1"),
        ("time_limit = '5'", "bitstreams.time_limit: expected an integer or a number, got '5'"),
        ("crop = 1.5", "bitstreams.crop: expected an integer, got 1.5"),
        (
            "classical = ['gif']",
            "bitstreams.classical: unknown classical codec 'gif'; choose from jpeg, webp, jpeg2000",
        ),
        ("dataset = 'kodak'", "bitstreams.dataset: 'kodak' is not a dataset of this suite \\(skimage-photos, mine\\)"),
        ("exmaples = 3", "bitstreams.exmaples: unknown key; allowed: budget, classical"),
    ],
)
def test_a_mistake_in_the_table_is_one_line_naming_the_key(tmp_path, table, said):
    with pytest.raises(SuiteError, match=f"mini.suite.toml: {said}"):
        suite(tmp_path, f"[bitstreams]\n{table}")
