"""A table given twice is named as such, the table and the one it repeats (two identical [[attacks]]
tables were reported as a codec problem: "give one codec a distinct name")."""

from __future__ import annotations

import pytest

from pytest_nicrobust.config.errors import SuiteError
from pytest_nicrobust.config.suite import parse_suite

CODEC = '[[codecs]]\nmodel = "bmshj2018-factorized"\nname = "tiny"\nweights = "random"\nqualities = [1]\n'
NOISE = '[[attacks]]\nname = "noise"\n'
PGD = '[[attacks]]\nname = "pgd"\nobjectives = ["recon_error", "bitrate"]\n'
PHOTOS = '[[datasets]]\nname = "skimage-photos"\n'


@pytest.mark.parametrize(
    "body, line",
    [
        (
            CODEC + NOISE + NOISE + PHOTOS,
            "attacks[1]: the same attack as attacks[0] (noise eps7): remove one of the two",
        ),
        (
            CODEC + PGD + '[[attacks]]\nname = "pgd"\nobjectives = ["bitrate"]\n' + PHOTOS,
            "attacks[1]: the same attack as attacks[0] (pgd eps7, objective bitrate): remove one of the two tables",
        ),
        (CODEC + NOISE + PHOTOS + PHOTOS, "datasets[1].name: datasets[0] is named 'skimage-photos' too"),
        (CODEC + CODEC + NOISE + PHOTOS, "codecs[1]: gives tiny[q1] as codecs[0] does: give one a distinct name"),
    ],
)
def test_a_repeated_table_names_itself_and_the_one_it_repeats(tmp_path, body, line):
    path = tmp_path / "s.toml"
    path.write_text(body)
    with pytest.raises(SuiteError) as info:
        parse_suite(str(path))
    assert str(info.value).startswith(f"{path}: {line}"), str(info.value)


def test_the_same_attack_with_other_parameters_is_not_a_repetition(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(CODEC + NOISE + '[[attacks]]\nname = "noise"\npresets = ["eps5"]\n' + PHOTOS)
    assert len(parse_suite(str(path)).cases) == 2
