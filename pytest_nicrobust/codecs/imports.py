"""Importing a codec's code: its folders on ``sys.path`` only while it imports and builds, a research
tree's top-level names kept apart from other codecs'.

A suite names code to import: ``model = "package.module:factory"``, ``class = "module:Class"``
(with an optional ``path``), or a public tree's ``root`` (HiFiC, QRes-VAE). Both ``model =`` and
``class =`` import from the same roots (:func:`roots`): the table's ``path``, the suite's folder,
the rootdir. :func:`importing` puts them first on ``sys.path`` for the block that imports the code
and builds the model, and takes them off afterwards, so one codec's folder never shadows another
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
import os
import site
import sys
import sysconfig
from collections.abc import Iterator

PLUGIN = "pytest_nicrobust"


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
