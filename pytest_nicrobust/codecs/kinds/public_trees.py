"""Codecs run from their authors' public source trees (EVC, HiFiC, QRes-VAE): finding a tree, checking a
[[codecs]] table's common keys, importing a package under a private alias (EVC's ``src``); a tree
imported by its own names is kept apart from other codecs' by :func:`pytest_nicrobust.codecs.imports.importing`.

Torch-free (read at collection). The user brings the tree (cloned and built as its README says);
nothing of it is copied into this package. A table names the tree with ``root = "..."`` (resolved
against the suite's folder) or, when it has no ``root``, the kind's environment variable.
"""

from __future__ import annotations

import glob
import importlib
import importlib.machinery
import importlib.util
import os
import sys

from ...files import sha256_of
from ..registry import WEIGHT_SOURCES, TableError


def tree_root(table: dict, base_dir: str, env: str, layouts: tuple[tuple[str, str], ...], what: str) -> str:
    """The absolute folder of a public tree: ``table["root"]`` or ``$env``. ``layouts`` are
    ``(subfolder, marker file)`` pairs tried in order (a repository holding the codec in a subfolder,
    or the codec's own folder); the first whose marker exists gives ``root/subfolder``."""
    given = table.get("root", os.environ.get(env) or None)
    if given is None:
        raise TableError("root", f'say where {what} is checked out: root = "/path" in the table, or ${env}')
    if not isinstance(given, str) or not given:
        raise TableError("root", f"expected a folder path, got {given!r}")
    root = os.path.abspath(os.path.join(base_dir, os.path.expanduser(given)))
    if not os.path.isdir(root):
        raise TableError("root", f"{root} is not a folder ({what})")
    for subfolder, marker in layouts:
        folder = os.path.join(root, subfolder) if subfolder else root
        if os.path.isfile(os.path.join(folder, marker)):
            return folder
    wanted = " or ".join(os.path.join(sub, marker) for sub, marker in layouts)
    raise TableError("root", f"{root} holds no {what} tree (looked for {wanted})")


def native_module(folder: str, stem: str) -> str | None:
    """Path of a built Python extension ``stem*.so`` / ``stem*.pyd`` in ``folder``, or None."""
    found = sorted(glob.glob(os.path.join(folder, f"{stem}*.so")) + glob.glob(os.path.join(folder, f"{stem}*.pyd")))
    return found[0] if found else None


def check_keys(table: dict, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise TableError(key, f"unknown key; allowed: {', '.join(sorted(allowed))}")


def checked_weights(table: dict, base_dir: str) -> str:
    """``"random"`` (asked for by name) or a checkpoint path resolved against the suite's folder;
    ``{quality}`` in a path is filled in per quality at load time."""
    weights = table.get("weights")
    if weights is None:
        raise TableError("weights", 'give a checkpoint path or "random" (random weights only when asked for)')
    if not isinstance(weights, str) or not weights:
        raise TableError("weights", f'expected a path or "random", got {weights!r}')
    if weights in WEIGHT_SOURCES and weights != "random":
        raise TableError(
            "weights", f'{weights!r} is a source of the CompressAI models; give a checkpoint path or "random"'
        )
    if weights == "random":
        return weights
    path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(weights)))
    if "{quality}" not in path and not os.path.isfile(path):
        raise TableError("weights", f"checkpoint {path} does not exist")
    return path


def checked_qualities(table: dict, check, default=None) -> list:
    """The table's ``qualities`` (a list, each accepted by ``check(q) -> error text or None``)."""
    qualities = table.get("qualities", default)
    if qualities is None:
        raise TableError("qualities", "give the qualities to test, e.g. qualities = [0, 3]")
    if not isinstance(qualities, list) or not qualities:
        raise TableError("qualities", f"expected a non-empty list, got {qualities!r}")
    for q in qualities:
        problem = check(q)
        if problem:
            raise TableError("qualities", f"{q!r}: {problem}")
    return qualities


def checked_option(table: dict, key: str, kind: type, default, choices=None):
    value = table.get(key, default)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise TableError(key, f"expected a positive integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise TableError(key, f"expected {kind.__name__}, got {value!r}")
    if choices is not None and value not in choices:
        raise TableError(key, f"{value!r} is not one of {', '.join(map(str, choices))}")
    return value


def default_label(kind_name: str, weights: str) -> str:
    return f"random-{kind_name}" if weights == "random" else kind_name


def code_digest(root: str, files: tuple[str, ...]) -> dict:
    """SHA-256 of the tree's files that define the model and its coder (the codec's identity)."""
    return {f: sha256_of(os.path.join(root, f)) for f in files if os.path.isfile(os.path.join(root, f))}


def import_under_alias(alias: str, package_dir: str, submodule: str):
    """Import ``submodule`` of the package in ``package_dir`` as if that package were named ``alias``
    (EVC's package is ``src``, which uses relative imports only): the alias stays registered so
    the tree's later relative imports (its native coder, imported on first use) resolve."""
    if alias not in sys.modules:
        spec = importlib.machinery.ModuleSpec(alias, None, is_package=True)
        spec.submodule_search_locations = [package_dir]
        sys.modules[alias] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{alias}.{submodule}")
