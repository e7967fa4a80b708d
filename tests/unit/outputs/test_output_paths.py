"""An output replaces nothing it must not: the checks on a results JSON target, and the writes that
never go into a FIFO, a device node, a folder or through a symbolic link (a FIFO stands in for
/dev/null: never touch /dev)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pytest_nicrobust.files import OutputPathError, check_output, check_output_folder, write_file, write_json_atomic

RESULTS = '{\n "format": 3,\n "complete": true,\n "provenance": {},\n "tests": []\n}\n'


def test_a_new_file_an_empty_one_and_an_earlier_results_json_may_be_written(tmp_path):
    check_output(str(tmp_path / "new.json"), "--nicrobust-json")
    (tmp_path / "empty.json").write_text("")
    check_output(str(tmp_path / "empty.json"), "--nicrobust-json")
    (tmp_path / "results.json").write_text(RESULTS)
    check_output(str(tmp_path / "results.json"), "--nicrobust-json")


@pytest.mark.parametrize(
    "name, body, why",
    [
        (
            "default.toml",
            '[[codecs]]\nmodel = "mbt2018-mean"\n',
            r"not a results JSON of pytest-nicrobust \(it begins '\[\[codecs\]\]'\)",
        ),
        ("thresholds.toml", "[defaults]\ndelta_psnr = 1.0\n", "not a results JSON of pytest-nicrobust"),
        ("package.json", '{"name": "web"}', "not a results JSON of pytest-nicrobust"),
    ],
)
def test_a_file_that_is_not_a_results_json_is_refused_and_kept(tmp_path, name, body, why):
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(OutputPathError, match=why):
        check_output(str(path), "--nicrobust-json")
    assert path.read_text() == body


def test_a_fifo_and_a_folder_are_refused(tmp_path):
    fifo = tmp_path / "null"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match=r"-o .*null: exists and is a FIFO, not a results JSON"):
        check_output(str(fifo), "-o")
    with pytest.raises(OutputPathError, match="exists and is a folder"):
        check_output(str(tmp_path), "-o")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_an_input_of_the_same_run_is_refused_even_when_it_is_a_results_json(tmp_path):
    baseline = tmp_path / "last-release.json"
    baseline.write_text(RESULTS)
    with pytest.raises(OutputPathError, match=r"it is the baseline \(--nicrobust-compare\) of this run"):
        check_output(str(baseline), "--nicrobust-json", {"the baseline (--nicrobust-compare)": str(baseline)})
    assert baseline.read_text() == RESULTS


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(OutputPathError, match="does not exist or is not writable"):
        check_output(str(tmp_path / "nowhere" / "r.json"), "--nicrobust-json")


def test_the_atomic_write_never_replaces_a_fifo_or_a_folder(tmp_path):
    fifo = tmp_path / "null"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="is a FIFO: not replaced"):
        write_json_atomic(str(fifo), {"format": 3})
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.listdir(tmp_path) == ["null"]
    (tmp_path / "folder").mkdir()
    with pytest.raises(OSError, match="is a folder: not replaced"):
        write_json_atomic(str(tmp_path / "folder"), {"format": 3})
    write_json_atomic(str(tmp_path / "r.json"), {"format": 3})
    assert json.loads((tmp_path / "r.json").read_text()) == {"format": 3}


def test_a_fixed_name_file_is_never_written_into_a_fifo_or_through_a_link(tmp_path):
    fifo = tmp_path / "categories.json"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="is a FIFO: not written"):
        write_file(str(fifo), b"{}")
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    (tmp_path / "environment.properties").symlink_to(target)
    with pytest.raises(OSError):
        write_file(str(tmp_path / "environment.properties"), b"x=1")
    assert target.read_text() == "keep"


def test_an_output_folder_that_is_a_file_or_a_link_is_refused(tmp_path):
    (tmp_path / "results-transfer").write_text("a file")
    with pytest.raises(OutputPathError, match="exists and is not a folder"):
        check_output_folder(str(tmp_path / "results-transfer"), "the transfer folder")
    (tmp_path / "allure").symlink_to(tmp_path)
    with pytest.raises(OutputPathError, match="is a symbolic link"):
        check_output_folder(str(tmp_path / "allure"), "--alluredir")
