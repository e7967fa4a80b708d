"""Where a suite's code is imported from: the same roots for ``model =`` and ``class =``, on
``sys.path`` only while the code imports and builds, a research tree's top-level names kept apart."""

from __future__ import annotations

import sys
import textwrap

from pytest_nicrobust.codecs.imports import roots
from pytest_nicrobust.codecs.kinds.by_class.codec import load
from pytest_nicrobust.codecs.kinds.by_class.table import check_table
from pytest_nicrobust.codecs.loading import load_codec

NET = textwrap.dedent("""
    from compressai.models import FactorizedPrior

    class Net(FactorizedPrior):
        TREE = {tree!r}
""")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def build(table, suite_folder, rootdir=()):
    t = check_table(table, str(suite_folder))
    return load("class", t["weights"], t["qualities"][0], "cpu", t["label"], t["options"], search=tuple(rootdir))


def test_a_trees_path_is_on_sys_path_only_while_its_code_imports(tmp_path):
    write(tmp_path / "tree" / "tcm_models" / "__init__.py", NET.format(tree="tree"))
    before = list(sys.path)
    codec = build(
        {"class": "tcm_models:Net", "path": "tree", "options": {"N": 8, "M": 8}, "weights": "random"}, tmp_path
    )
    assert type(codec.model).TREE == "tree"
    assert sys.path == before and "tcm_models" not in sys.modules, "the tree left its folder or its modules behind"
    assert "__init__.py" in codec.identity()["model_code_sha256"], "its source pinned while it was registered"


def test_a_package_vendored_in_one_tree_does_not_reach_another_codec(tmp_path, monkeypatch):
    """One tree ships its own copy of a package (a vendored timm); another codec imports the real one."""
    write(tmp_path / "site" / "vendorlib" / "__init__.py", "WHO = 'the installed one'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))  # stands for site-packages
    write(tmp_path / "a" / "vendorlib" / "__init__.py", "WHO = 'tree a, vendored'\n")
    write(tmp_path / "a" / "amodels.py", "import vendorlib\n" + NET.format(tree="a") + "    LIB = vendorlib.WHO\n")
    write(tmp_path / "b" / "bmodels.py", "import vendorlib\n" + NET.format(tree="b") + "    LIB = vendorlib.WHO\n")
    monkeypatch.delitem(sys.modules, "vendorlib", raising=False)
    a = build({"class": "amodels:Net", "path": "a", "options": {"N": 8, "M": 8}, "weights": "random"}, tmp_path)
    b = build({"class": "bmodels:Net", "path": "b", "options": {"N": 8, "M": 8}, "weights": "random"}, tmp_path)
    assert type(a.model).LIB == "tree a, vendored"
    assert type(b.model).LIB == "the installed one", "tree a's vendored copy leaked into another codec"
    monkeypatch.delitem(sys.modules, "vendorlib", raising=False)


def test_class_and_model_import_from_the_same_roots(tmp_path):
    """A module in the rootdir serves a suite in a subfolder, by class and by factory alike."""
    write(
        tmp_path / "rootnets.py",
        NET.format(tree="rootdir")
        + textwrap.dedent("""
        def make(*, name, quality, weights, device):
            from pytest_nicrobust.codecs.builtin.compressai_models import load
            return load("bmshj2018-factorized", "random", 1, device, name)
    """),
    )
    suites = tmp_path / "suites"
    suites.mkdir()
    before = list(sys.path)
    by_class = build(
        {"class": "rootnets:Net", "options": {"N": 8, "M": 8}, "weights": "random"}, suites, (str(tmp_path),)
    )
    by_factory = load_codec("rootnets:make", None, 1, "cpu", "ours", search=roots(None, str(suites), (str(tmp_path),)))
    assert type(by_class.model).TREE == "rootdir" and by_factory.label == "ours"
    assert sys.path == before
    sys.modules.pop("rootnets", None)
