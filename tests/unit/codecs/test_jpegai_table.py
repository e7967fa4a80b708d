"""JPEG AI suite tables checked at collection, without a reference tree (CI): one line per mistake.

A fake tree (the files the check looks for, empty extension files, profile files in the layout of
either line of the reference software, written here) stands in for the reference software; nothing
here imports torch or the tree.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from jpegai_fakes import DIS, IS, codec_table, fake_tree, one_line_error, suite_with

from pytest_nicrobust.codecs.kinds.jpegai import table as jpegai_tree
from pytest_nicrobust.config.suite import parse_suite

REAL_MISSING_DEPENDENCIES = jpegai_tree.missing_dependencies


@pytest.fixture(autouse=True)
def dependencies_present(monkeypatch):
    """The real check looks for the tree's packages in this environment; CI may lack them."""
    monkeypatch.setattr(jpegai_tree, "missing_dependencies", lambda: [])


def test_a_good_table_gives_one_codec_per_base_model(tmp_path):
    root = fake_tree(tmp_path / "tree")
    suite = parse_suite(
        str(
            suite_with(
                tmp_path, codec_table(root, 'qualities = ["b0.012", "b0.5"]\nweights = "random"\nprofile = "high"')
            )
        )
    )
    entries = sorted({(c.codec.label, c.codec.quality, c.codec.weights) for c in suite.cases})
    assert entries == [("random-jpegai", "b0.012", "random"), ("random-jpegai", "b0.5", "random")]
    options = suite.cases[0].codec.options
    assert options["profile"] == "high" and options["root"] == str(root.resolve()) and options["seed"] == 0


def test_two_trees_with_two_labels_in_one_suite(tmp_path):
    a, b = fake_tree(tmp_path / "jpeg-ai-6.1"), fake_tree(tmp_path / "jpeg-ai-7.1")
    tables = codec_table(a, 'name = "jpegai-6.1"\nqualities = ["b0.012"]\nweights = "random"') + codec_table(
        b, 'name = "jpegai-7.1"\nqualities = ["b0.012"]\nweights = "random"'
    )
    suite = parse_suite(str(suite_with(tmp_path, tables)))
    roots = {c.codec.label: c.codec.options["root"] for c in suite.cases}
    assert roots == {"jpegai-6.1": str(a.resolve()), "jpegai-7.1": str(b.resolve())}


def test_trained_weights_found_in_the_models_folder(tmp_path):
    needed = jpegai_tree.weight_files(1, 0.012)
    root = fake_tree(tmp_path / "tree", weights=needed)
    suite = parse_suite(str(suite_with(tmp_path, codec_table(root, 'qualities = ["b0.012"]'))))
    codec = suite.cases[0].codec
    assert codec.label == "jpegai" and codec.weights == str(root.resolve() / "models")


def test_root_missing(tmp_path):
    path = suite_with(tmp_path, '[[codecs]]\nmodel = "jpegai"\nqualities = ["b0.012"]\n')
    assert "codecs[0].root: give the folder" in one_line_error(path)


def test_root_not_a_folder(tmp_path):
    message = one_line_error(suite_with(tmp_path, codec_table(tmp_path / "nowhere")))
    assert "codecs[0].root:" in message and "nowhere is not a folder" in message


def test_root_not_a_reference_tree(tmp_path):
    (tmp_path / "other").mkdir()
    message = one_line_error(suite_with(tmp_path, codec_table(tmp_path / "other")))
    assert "is not a JPEG AI reference-software tree" in message and "src/reco/coders/encoder.py" in message


def test_extensions_not_built(tmp_path):
    root = fake_tree(tmp_path / "tree", extensions=False)
    message = one_line_error(suite_with(tmp_path, codec_table(root)))
    assert "codecs[0].root: native extension 'ans' is not built" in message and "cpp_exts/mans" in message


def test_unknown_profile(tmp_path):
    root = fake_tree(tmp_path / "tree")
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'profile = "ultra"\nqualities = ["b0.012"]')))
    assert "codecs[0].profile: unknown profile 'ultra'" in message and "base or main (BOP)" in message


def is_tree(folder):
    return fake_tree(folder, profiles=IS, line="IS", profile_list=IS, stream_ids=True)


@pytest.mark.parametrize("name", ["base", "main"])
def test_base_and_main_name_profile_1_on_the_is_line(tmp_path, name):
    root = is_tree(tmp_path / "tree")
    profile = jpegai_tree.resolve_profile(str(root), name)
    assert (profile.decoder_id, profile.path, profile.stream_id, profile.operation_point) == (
        1,
        "cfg/profiles/base.json",
        0,
        "BOP",
    )
    suite = parse_suite(
        str(suite_with(tmp_path, codec_table(root, f'profile = "{name}"\nqualities = ["b0.012"]\nweights = "random"')))
    )
    assert suite.cases[0].codec.options["profile"] == name
    assert jpegai_tree.line(str(root)) == "IS" and jpegai_tree.version(str(root)) == "JAI IS"


@pytest.mark.parametrize("listed", [None, DIS])
@pytest.mark.parametrize("name", ["base", "main"])
def test_base_and_main_name_profile_1_on_the_dis_line(tmp_path, name, listed):
    root = fake_tree(tmp_path / "tree", profile_list=listed)
    profile = jpegai_tree.resolve_profile(str(root), name)
    assert (profile.decoder_id, profile.path, profile.stream_id) == (1, "cfg/profiles/main.json", None)
    assert jpegai_tree.line(str(root)) == "DIS"


def test_the_trees_own_list_decides_the_file(tmp_path):
    # a tree whose list orders its files differently: the id, not the word, picks the file
    root = fake_tree(tmp_path / "tree", profiles=("sop", "bop", "hop"), profile_list=("sop", "bop", "hop"))
    assert [jpegai_tree.resolve_profile(str(root), n).path for n in ("simple", "main", "high")] == [
        "cfg/profiles/sop.json",
        "cfg/profiles/bop.json",
        "cfg/profiles/hop.json",
    ]


def test_a_listed_profile_without_its_file_is_named(tmp_path):
    root = is_tree(tmp_path / "tree")
    (root / "cfg" / "profiles" / "base.json").unlink()
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'profile = "main"\nqualities = ["b0.012"]')))
    assert "codecs[0].profile:" in message and "no cfg/profiles/base.json, profile 1" in message


def test_a_profile_file_with_another_id_is_named(tmp_path):
    root = is_tree(tmp_path / "tree")
    (root / "cfg" / "profiles" / "base.json").write_text('{"decoder_profile_id": 2}')
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'profile = "base"\nqualities = ["b0.012"]')))
    assert "cfg/profiles/base.json" in message and "decoder_profile_id 2" in message and "at 1" in message


@pytest.mark.parametrize(
    "text, says",
    [
        ("{", "is not JSON"),
        ('{"profiles": "base"}', "no list of profile names"),
        ('{"profiles": ["simple"]}', "none at decoder profile id 1"),
    ],
)
def test_a_broken_profile_list_is_one_line(tmp_path, text, says):
    root = is_tree(tmp_path / "tree")
    (root / "cfg" / "profiles" / "profiles_list.json").write_text(text)
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'profile = "base"\nqualities = ["b0.012"]')))
    assert "profiles_list.json" in message and says in message


def test_a_stream_id_that_is_not_an_integer_is_named(tmp_path):
    root = is_tree(tmp_path / "tree")
    (root / "cfg" / "profiles" / "high.json").write_text('{"decoder_profile_id": 2, "stream_profile_id": "zero"}')
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'profile = "high"\nqualities = ["b0.012"]')))
    assert "cfg/profiles/high.json" in message and "stream_profile_id is 'zero'" in message


def test_unknown_beta(tmp_path):
    root = fake_tree(tmp_path / "tree")
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'qualities = ["b0.3"]\nweights = "random"')))
    assert "codecs[0].qualities: 'b0.3' is not a base model" in message and "b0.075" in message


def test_qualities_missing(tmp_path):
    root = fake_tree(tmp_path / "tree")
    assert "codecs[0].qualities:" in one_line_error(suite_with(tmp_path, codec_table(root, 'weights = "random"')))


def test_missing_weights_files_are_named(tmp_path):
    root = fake_tree(tmp_path / "tree", weights=jpegai_tree.weight_files(1, 0.012)[:-1])
    (root / "models" / "VM_bop" / "decoder_UV_0.012.pth.dvc").write_text("outs: []")
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'qualities = ["b0.012"]')))
    assert "codecs[0].weights: b0.012 under profile 'main' needs 1 missing file(s)" in message
    assert "VM_bop/decoder_UV_0.012.pth" in message and ".dvc pointer" in message


def test_weights_folder_missing(tmp_path):
    root = fake_tree(tmp_path / "tree")
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'qualities = ["b0.012"]\nweights = "elsewhere"')))
    assert "codecs[0].weights: weights folder" in message and "elsewhere does not exist" in message


def test_hyper_gradient_is_on_unless_the_suite_says_false(tmp_path):
    root = fake_tree(tmp_path / "tree")
    tables = codec_table(root) + codec_table(
        root, 'name = "flat"\nqualities = ["b0.012"]\nweights = "random"\nhyper_gradient = false'
    )
    suite = parse_suite(str(suite_with(tmp_path, tables)))
    assert {c.codec.label: c.codec.options["hyper_gradient"] for c in suite.cases} == {
        "random-jpegai": True,
        "flat": False,
    }
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'qualities = ["b0.012"]\nhyper_gradient = "yes"')))
    assert "codecs[0].hyper_gradient: true" in message and "'yes'" in message


def test_the_gpu_path_is_asked_for(tmp_path):
    root = fake_tree(tmp_path / "tree")
    suite = parse_suite(
        str(suite_with(tmp_path, codec_table(root, 'qualities = ["b0.012"]\nweights = "random"\ngpu = true')))
    )
    assert suite.cases[0].codec.options["gpu"] is True
    plain = parse_suite(str(suite_with(tmp_path, codec_table(root))))
    assert plain.cases[0].codec.options["gpu"] is False  # the CPU unless asked
    message = one_line_error(suite_with(tmp_path, codec_table(root, 'qualities = ["b0.012"]\ngpu = 1')))
    assert "codecs[0].gpu: true" in message


def test_unknown_key(tmp_path):
    root = fake_tree(tmp_path / "tree")
    message = one_line_error(
        suite_with(tmp_path, codec_table(root, 'qualities = ["b0.012"]\nweights = "random"\nbpp = 0.5'))
    )
    assert "codecs[0].bpp: unknown key for model 'jpegai'" in message


def test_missing_python_dependencies_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(jpegai_tree, "DEPENDENCIES", {"no_such_module_for_jpegai": "no-such-package"})
    monkeypatch.setattr(jpegai_tree, "missing_dependencies", REAL_MISSING_DEPENDENCIES)
    message = one_line_error(suite_with(tmp_path, codec_table(fake_tree(tmp_path / "tree"))))
    assert "codecs[0].root: the tree's Python dependencies are missing here: no-such-package" in message


def test_version_and_commit_read_without_git(tmp_path):
    root = fake_tree(tmp_path / "tree")
    (root / "cfg" / "info.json").write_text('{"codec_name": "JAI", "version": "DIS"}')
    (root / ".git" / "refs" / "heads").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "refs" / "heads" / "main").write_text("ae65c606ebe2a34678ef2337800c73ef7db61a4c\n")
    assert jpegai_tree.version(str(root)) == "JAI DIS"
    assert jpegai_tree.git_commit(str(root)) == "ae65c606ebe2a34678ef2337800c73ef7db61a4c"
    before = jpegai_tree.code_digest(str(root))
    (root / "cfg" / "tools_off.json").write_text('{"x": 1}')
    assert jpegai_tree.code_digest(str(root)) != before


def test_the_collection_half_imports_no_torch():
    code = (
        "import sys, pytest_nicrobust.codecs.kinds.jpegai.table as t; "
        "t.check_table; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
