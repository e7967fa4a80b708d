"""The transfer files beside the JSON: written into a folder of their own, never through a symlink."""

from __future__ import annotations

import os

from pytest_nicrobust.outputs import writer as outputs


def _matrices():
    return {
        "skimage-photos": {
            "sources": ["a[q1]"],
            "targets": ["a[q1]", "jpeg"],
            "metrics": {"delta_psnr": [[1.0, 2.0]]},
            "limits": {"delta_psnr": [[3.0, 3.0]]},
        }
    }


def test_transfer_files_are_written_beside_the_json(tmp_path):
    out = outputs.Outputs()
    files = outputs._transfer_files(out, _matrices(), str(tmp_path / "results.json"))
    assert files and not out.problems
    assert sorted(os.listdir(tmp_path / "results-transfer")) == sorted(name for name, _ in files)


def test_a_symlinked_transfer_folder_is_refused_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "results-transfer").symlink_to(elsewhere)
    out = outputs.Outputs()
    outputs._transfer_files(out, _matrices(), str(tmp_path / "results.json"))
    assert os.listdir(elsewhere) == []
    assert any("symbolic link" in p for p in out.problems), out.problems
