"""Where a suite's code is imported from: only its roots (its folder, the rootdir, a ``path``) or an
installed package declaring the codec entry-point group, the same roots for ``model =`` and ``class =``,
on ``sys.path`` only while the code imports and builds, a research tree's top-level names kept apart."""

from __future__ import annotations

import sys
import textwrap

import pytest

from pytest_nicrobust import CodecError
from pytest_nicrobust.codecs import imports
from pytest_nicrobust.codecs.imports import RULE, roots
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


# -- the rule: a suite names code only from its roots or a codec package -----------------------------


@pytest.mark.parametrize(
    "target, options, message",
    [
        ("os:system", {"command": "touch {victim}/touched"}, "'os' is Python's standard library"),
        ("shutil:rmtree", {"path": "{victim}"}, "'shutil' is Python's standard library"),
        ("subprocess:run", {"args": ["touch", "{victim}/touched"]}, "'subprocess' is Python's standard library"),
        ("builtins:open", {"file": "{victim}/touched", "mode": "w"}, "'builtins' is Python's standard library"),
        ("torch:save", {"obj": 1, "f": "{victim}/touched"}, "'torch' is an installed package"),
    ],
)
def test_a_class_naming_a_library_callable_runs_nothing(tmp_path, target, options, message):
    victim = tmp_path / "victim"
    victim.mkdir()
    options = {k: str(v).format(victim=victim) if isinstance(v, str) else v for k, v in options.items()}
    if target == "subprocess:run":
        options["args"] = ["touch", str(victim / "touched")]
    with pytest.raises(CodecError) as info:
        build({"class": target, "options": options, "weights": "random"}, tmp_path)
    line = str(info.value)
    assert message in line and "refused before importing it" in line and "\n" not in line
    assert victim.is_dir() and not any(victim.iterdir()), "the callable ran"


@pytest.mark.parametrize(
    "target, message",
    [
        ("sympy:sympify", "'sympy' is an installed package"),  # a dependency of torch: parses with eval
        ("numpy:save", "'numpy' is an installed package"),
        ("pytest_nicrobust.files:write_json_atomic", "'pytest_nicrobust' is this plugin itself"),
        ("no_such_codec_module:make", "cannot import 'no_such_codec_module'"),
    ],
)
def test_a_factory_from_a_library_or_the_plugin_is_refused_before_it_is_imported(tmp_path, target, message):
    with pytest.raises(CodecError, match=message) as info:
        load_codec(target, None, 1, "cpu", search=(str(tmp_path),))
    assert RULE in str(info.value) or "cannot import" in message


REEXPORTS = textwrap.dedent("""
    import functools
    import shutil
    from os import system
    from subprocess import run

    rmtree_here = functools.partial(shutil.rmtree, {victim!r})
""")


@pytest.mark.parametrize("name, defined_in", [("system", "posix"), ("run", "subprocess"), ("rmtree_here", "shutil")])
def test_a_library_callable_re_exported_by_a_suites_module_is_refused_before_it_is_called(tmp_path, name, defined_in):
    victim = tmp_path / "victim"
    victim.mkdir()
    write(tmp_path / "reexports.py", REEXPORTS.format(victim=str(victim)))
    try:
        with pytest.raises(CodecError, match=rf"is defined in {defined_in} .* refused before calling it"):
            load_codec(f"reexports:{name}", None, 1, "cpu", search=(str(tmp_path),))
    finally:
        sys.modules.pop("reexports", None)
    assert victim.is_dir()


def test_a_virtual_environment_inside_the_rootdir_is_not_the_projects_code(tmp_path, monkeypatch):
    venv = tmp_path / ".venv"
    write(venv / "lib" / "site-packages" / "venvpkg" / "__init__.py", "def make(**kwargs):\n    raise SystemExit(9)\n")
    monkeypatch.syspath_prepend(str(venv / "lib" / "site-packages"))
    monkeypatch.setattr(imports, "interpreter_trees", lambda: (str(venv),))
    with pytest.raises(CodecError, match=r"'venvpkg' is an installed package"):
        load_codec("venvpkg:make", None, 1, "cpu", search=(str(tmp_path),))
    assert "venvpkg" not in sys.modules


def _distribution(site, name, entry_point=None):
    write(site / name / "__init__.py", "import os\nsystem = os.system\n\ndef make(**kwargs):\n    return kwargs\n")
    info = site / f"{name}-1.0.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    write(info / "top_level.txt", f"{name}\n")
    if entry_point:
        write(info / "entry_points.txt", f"[pytest_nicrobust.codecs]\n{entry_point}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder of installed distributions on sys.path (what packages_distributions reads)."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    imports.codec_packages.cache_clear()
    yield folder
    imports.codec_packages.cache_clear()
    for name in ("codecpkg", "plainpkg"):
        sys.modules.pop(name, None)


def test_an_installed_package_declaring_the_codec_group_may_be_named(site, tmp_path):
    _distribution(site, "codecpkg", "ours = codecpkg:make")
    _distribution(site, "plainpkg")
    suite_folder = str(tmp_path / "suites")
    with imports.importing((suite_folder,)):
        assert imports.import_target("codecpkg:make", (suite_folder,))(a=1) == {"a": 1}
        with pytest.raises(imports.Refused, match=r"system is defined in posix"):
            imports.import_target("codecpkg:system", (suite_folder,))
        with pytest.raises(imports.Refused, match=r"'plainpkg' is .*plainpkg, not your codec's code"):
            imports.import_target("plainpkg:make", (suite_folder,))


def test_an_entry_point_naming_a_module_outside_its_distribution_is_refused(site):
    from importlib.metadata import entry_points

    _distribution(site, "codecpkg", "evil = os:system\nours = codecpkg:make")
    found = {ep.name: ep for ep in entry_points(group="pytest_nicrobust.codecs")}
    imports.check_entry_point(found["ours"])
    with pytest.raises(imports.Refused, match=r"entry point evil = 'os:system' of codecpkg names 'os'"):
        imports.check_entry_point(found["evil"])
