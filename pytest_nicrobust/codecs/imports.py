"""Importing a codec's code: only from the suite's roots or a codec package (the trust model's rule),
its folders on ``sys.path`` only while it imports and builds, a research tree's top-level names kept
apart from other codecs'.

A suite names code to import: ``model = "package.module:factory"``, ``class = "module:Class"``
(with an optional ``path``), an entry point's name, or a public tree's ``root`` (HiFiC, QRes-VAE).
Both ``model =`` and ``class =`` import from the same roots (:func:`roots`): the table's ``path``,
the suite's folder, the rootdir (``check-codec``: the current folder). The rule
(:func:`check_module`, :func:`check_home`): a suite may name a factory or a model class only from a
module whose file lies under one of those roots (outside the interpreter's own trees: a virtual
environment inside the project is not the project's code), or in an installed distribution that
declares the entry-point group ``pytest_nicrobust.codecs``. Anything else (the standard library, the
plugin's dependencies or any other installed package, the plugin itself) is refused with one line
before it is imported; a callable that an allowed module re-exports from elsewhere (``from os import
system``, a ``functools.partial`` of one) is refused before it is called. A module's place is found
without running it: :func:`importlib.util.find_spec` on its top-level name, and
:func:`importlib.metadata.packages_distributions` for the installed distributions.

:func:`importing` puts the roots first on ``sys.path`` for the block that imports the code and
builds the model, and takes them off afterwards, so one codec's folder never shadows another
codec's packages.

A research tree (``path``, a public tree's ``root``) has top-level packages with common names
(``models``, ``utils``, ``src``, even a vendored ``timm``): while it imports, modules of those names
imported before (from another tree) are set aside, and afterwards the tree's own leave
``sys.modules`` and the others come back. Its modules keep their references to each other, so a
tree's imports must run at module level (or while the model is built). The standard library, this
plugin and packages already imported from the interpreter's own trees (torch, numpy, ...) are never
set aside: a tree cannot replace them.

Torch-free.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterator

PLUGIN = "pytest_nicrobust"
ENTRY_POINT_GROUP = "pytest_nicrobust.codecs"
RULE = (
    "a suite names code only from its own folder, the rootdir, a path it gives, or an installed package that "
    f"declares the entry point group {ENTRY_POINT_GROUP}"
)


class Refused(ValueError):
    """Code a suite may not import or call: one line, the rule included."""


def within(path: str, folder: str) -> bool:
    """Whether ``path`` lies in ``folder`` (both resolved through symbolic links)."""
    folder = os.path.realpath(folder)
    try:
        return os.path.commonpath([os.path.realpath(path), folder]) == folder
    except ValueError:  # another drive
        return False


@functools.lru_cache(maxsize=1)
def interpreter_trees() -> tuple[str, ...]:
    """The interpreter's own folders: its prefixes, the standard library, every site-packages."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    found |= {sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    with contextlib.suppress(AttributeError):  # virtualenv's old site module
        found |= set(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        found.add(site.getusersitepackages())
    return tuple(sorted(f for f in found if f))


def installed(path: str) -> bool:
    """Inside the interpreter's own trees (standard library, site-packages; a virtual environment
    inside a project is one of them, not the project's code)."""
    return any(within(path, tree) for tree in interpreter_trees())


def roots(path: str | None, suite_folder: str | None, rootdir: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The folders a suite's code is imported from, nearest first: the table's ``path``, the suite's
    folder, the rootdir (``check-codec``: the current folder)."""
    out: list[str] = []
    for folder in (path, suite_folder, *rootdir):
        if folder and os.path.abspath(folder) not in out:
            out.append(os.path.abspath(folder))
    return tuple(out)


def top_level_names(folder: str) -> set[str]:
    """The names ``import NAME`` finds in ``folder``: modules, extension modules and packages."""
    suffixes = tuple(importlib.machinery.all_suffixes())
    names = set()
    for entry in os.listdir(folder):
        stem = next((entry[: -len(s)] for s in suffixes if entry.endswith(s)), None)
        if stem is not None:
            names.add(stem.partition(".")[0])
        elif entry.isidentifier() and os.path.isdir(os.path.join(folder, entry)):
            names.add(entry)
    return names


def _top(name: str) -> str:
    return name.partition(".")[0]


def _kept_apart(tree: str, names: set[str] | None) -> set[str]:
    """The top-level names of ``tree`` to keep apart: never the standard library, this plugin, or a
    package already imported from the interpreter's trees."""
    kept = set(top_level_names(tree) if names is None else names)
    kept -= set(sys.stdlib_module_names) | set(sys.builtin_module_names) | {PLUGIN}
    for name in list(kept):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file and installed(file):
            kept.discard(name)
    return kept


@contextlib.contextmanager
def importing(folders: tuple[str, ...], tree: str | None = None, names: set[str] | None = None) -> Iterator[None]:
    """``folders`` first on ``sys.path`` (in their order) inside the block only.

    With ``tree`` (a research tree's folder) its top-level ``names`` (default: every one it holds)
    are kept apart: modules of those names imported before are set aside during the block and come
    back after it; the tree's own leave ``sys.modules`` when the block ends.
    """
    kept = _kept_apart(tree, names) if tree else set()
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if _top(k) in kept}
    added = [f for f in reversed(folders) if f]
    for folder in added:
        sys.path.insert(0, folder)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for folder in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
        for key in [k for k in sys.modules if _top(k) in kept]:
            del sys.modules[key]
        sys.modules.update(saved)


# -- the rule ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _plugin_folder() -> str:
    return os.path.dirname(os.path.abspath(importlib.import_module(PLUGIN).__file__ or ""))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def codec_packages() -> dict[str, str]:
    """{top-level module: the installed distribution providing it that declares the codec entry-point group}."""
    from importlib.metadata import entry_points, packages_distributions

    declaring = {_norm(ep.dist.name) for ep in entry_points(group=ENTRY_POINT_GROUP) if getattr(ep, "dist", None)}
    out = {}
    for top, dists in packages_distributions().items():
        mine = [d for d in dists if _norm(d) in declaring]
        if mine:
            out[top] = mine[0]
    return out


def places(top: str, folders: tuple[str, ...]) -> list[str]:
    """Where ``import top`` takes its code from with ``folders`` first on sys.path, found without
    running it: files or package folders, ``["built-in"]`` or ``["frozen"]``, ``[]`` if nowhere."""
    if top in sys.builtin_module_names:
        return ["built-in"]
    with importing(folders):
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):  # in sys.modules without a spec (a module made at run time)
            file = getattr(sys.modules.get(top), "__file__", None)
            return [file] if file else ["built-in"]
    if spec is None:
        return []
    if spec.origin in ("built-in", "frozen"):
        return [spec.origin]
    found = list(spec.submodule_search_locations or [])  # a package; a namespace package has several
    return found or ([spec.origin] if spec.origin else [])


def _allowed(top: str, where: list[str], folders: tuple[str, ...]) -> bool:
    if top in sys.stdlib_module_names or top == PLUGIN or where in (["built-in"], ["frozen"]) or not where:
        return False
    if any(within(p, _plugin_folder()) for p in where):
        return False
    local = all(not installed(p) and any(within(p, f) for f in folders if f) for p in where)
    return local or top in codec_packages()


def _what(top: str, where: list[str]) -> str:
    if top in sys.stdlib_module_names or where in (["built-in"], ["frozen"]):
        return f"{top!r} is Python's standard library"
    if top == PLUGIN or any(within(p, _plugin_folder()) for p in where):
        return f"{top!r} is this plugin itself"
    if all(installed(p) for p in where):
        return f"{top!r} is an installed package ({where[0]})"
    return f"{top!r} is {where[0]}"


def check_module(module_name: str, folders: tuple[str, ...]) -> None:
    """Refuse (:class:`Refused`), before anything of it runs, a module a suite may not import."""
    top = module_name.partition(".")[0]
    where = places(top, folders)
    if not where:
        searched = ", ".join(f for f in folders if f) or "sys.path"
        raise Refused(
            f"cannot import {top!r}: no module of that name in {searched}, nor a package that declares {ENTRY_POINT_GROUP}"
        )
    if not _allowed(top, where, folders):
        raise Refused(f"{_what(top, where)}, not your codec's code: {RULE}; refused before importing it")


def home_module(obj) -> str:
    """The module that defines ``obj``: a function, class, builtin, bound method or callable object."""
    target = getattr(obj, "__func__", obj)
    if inspect.isfunction(target) or inspect.isclass(target) or inspect.isbuiltin(target):
        return getattr(target, "__module__", None) or "builtins"
    if inspect.ismethoddescriptor(target):
        return getattr(getattr(target, "__objclass__", None), "__module__", None) or "builtins"
    return type(target).__module__ or "builtins"


def check_home(obj, folders: tuple[str, ...]) -> None:
    """Refuse, before it is called, a callable defined outside the roots (re-exported by an allowed
    module, or wrapped in ``functools.partial``)."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    name = home_module(obj)
    file = getattr(sys.modules.get(name), "__file__", None)
    top = name.partition(".")[0]
    where = [file] if file else ["built-in"]
    if not _allowed(top, where, folders):
        what = getattr(obj, "__qualname__", None) or type(obj).__name__
        raise Refused(
            f"{what} is defined in {name} ({_what(top, where)}), not in your codec's code: {RULE}; "
            "refused before calling it"
        )


def import_target(target: str, folders: tuple[str, ...]):
    """The object ``module:attr`` names: its module checked before it is imported, the object after it
    is found and before it is called (:class:`Refused`); import errors propagate. Call it inside
    :func:`importing` with the same folders."""
    module_name, _, attr = target.partition(":")
    check_module(module_name, folders)
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise Refused(
                f"module {module_name!r} ({getattr(sys.modules.get(module_name), '__file__', None)}) "
                f"has no attribute {attr!r}"
            )
        obj = getattr(obj, part)
    check_home(obj, folders)
    return obj


def check_entry_point(ep) -> None:
    """Refuse an entry point of the codec group whose module is not in the distribution that declares it."""
    top = ep.value.partition(":")[0].partition(".")[0].strip()
    dist = getattr(getattr(ep, "dist", None), "name", None)
    if dist is None or _norm(codec_packages().get(top, "")) != _norm(dist):
        raise Refused(
            f"entry point {ep.name} = {ep.value!r} of {dist or 'an unknown distribution'} names "
            f"{top!r}, which that distribution does not install: {RULE}"
        )
