"""Which codec a suite names, without loading it (no torch): built-in, entry point or import path.

* a CompressAI architecture (:data:`ARCHITECTURES`) with weights from :data:`WEIGHT_SOURCES`
  or a checkpoint path;
* an entry point of the group ``pytest_nicrobust.codecs`` (an installed package);
* an import path ``package.module:factory``, imported from ``sys.path`` with the rootdir and
  the suite's folder added, as pytest imports conftest-adjacent code.

External factories are called as ``factory(name=..., quality=..., weights=..., device=..., **options)``
(see :func:`call_factory` and the README's "Bring your own codec").

Trust: a suite file names code to import and call, as a ``conftest.py`` does, so it is as trusted
as the code beside it. What the plugin refuses (:func:`refuse_non_factory`), before any suite key
reaches the callable: standard-library and builtin callables (``os:system``, ``shutil:rmtree``,
``builtins:exec``, a ``functools.partial`` of one, one re-exported by a user module) and the callables
of the plugin's own dependencies (torch, numpy, PIL, pytest, ...), none of which makes a Codec;
whatever a factory returns that is not a Codec is refused after the call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys

ARCHITECTURES = (
    "bmshj2018-factorized",
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "mbt2018",
    "cheng2020-anchor",
    "cheng2020-attn",
)
WEIGHT_SOURCES = ("nicrobust", "zoo", "random")
ENTRY_POINT_GROUP = "pytest_nicrobust.codecs"

# Codec kinds with suite keys of their own (JPEG AI's tree and profile, a class and its options, ...): the
# name a [[codecs]] table's ``model`` gives -> its folder in codecs/kinds/, which holds ``table.py``
# (torch-free, checked at collection) and ``codec.py`` (the codec, loaded on a worker). ``class =
# "module:Class"`` in a table selects the kind "class". Adding a kind: its folder and one line here.
CODEC_KINDS: dict[str, str] = {
    "class": "by_class",
    "evc": "evc",
    "hific": "hific",
    "jpegai": "jpegai",
    "qres-vae": "qres_vae",
}
KINDS_PACKAGE = "pytest_nicrobust.codecs.kinds"

# top-level packages whose callables are never codec factories (besides the standard library)
NOT_FACTORIES = frozenset(
    {
        "torch",
        "torchvision",
        "numpy",
        "PIL",
        "pytest",
        "_pytest",
        "pluggy",
        "xdist",
        "execnet",
        "compressai",
        "scipy",
        "skimage",
        "allure",
        "allure_commons",
        "tomllib",
        "setuptools",
        "pip",
        "importlib_metadata",
    }
)

_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class TableError(ValueError):
    """A [[codecs]] key that a codec kind refuses; the suite parser names the file and ``key``."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


class CodecKind:
    """A codec kind's two halves, imported when a suite names it.

    ``check_table(table, base_dir) -> dict`` (torch-free, at collection): ``table`` is the
    [[codecs]] table as written, without ``name``; returns ``{"weights": str | None, "qualities":
    [...], "options": {...JSON-serialisable...}, "label": default label}`` or raises
    :class:`TableError`. Paths in it are resolved against ``base_dir`` (the suite's folder).

    ``load(model, weights, quality, device, label, options, search=()) -> Codec`` (on a worker);
    ``search``: the folders the suite's code is imported from (its folder, the rootdir), for a kind
    that imports a class the suite names.
    """

    def __init__(self, name: str):
        self.name = name
        folder = f"{KINDS_PACKAGE}.{CODEC_KINDS[name]}"
        self.check_module, self.load_module = f"{folder}.table", f"{folder}.codec"

    def check_table(self, table: dict, base_dir: str) -> dict:
        return importlib.import_module(self.check_module).check_table(table, base_dir)

    def load(self, *args, **kwargs):
        return importlib.import_module(self.load_module).load(*args, **kwargs)


def codec_kind(model: str | None) -> CodecKind | None:
    """The :class:`CodecKind` a [[codecs]] ``model`` names (``class`` for a class key), or None."""
    return CodecKind(model) if model in CODEC_KINDS else None


def external_codecs() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_models() -> list[str]:
    return list(ARCHITECTURES) + sorted(k for k in CODEC_KINDS if k != "class") + sorted(external_codecs())


def is_import_path(model: str) -> bool:
    return bool(_IMPORT_PATH.fullmatch(model))


def parse_quality(text: str):
    """``"q2"`` or ``"2"`` -> 2; anything else (``"b0.075"``) stays a string."""
    digits = text[1:] if text[:1] == "q" else text
    return int(digits) if digits.isdigit() else text


def parse_spec(spec: str, base_dir: str = ".") -> dict:
    """One codec in a string, as a suite's ``spec`` key or ``check-codec`` takes it.

    ``nicrobust:mbt2018-mean@q2`` (also ``zoo:`` and ``random:``) or ``package.module:factory[@quality]``.
    Returns the suite keys it stands for: model, weights and qualities.
    """
    head, sep, rest = spec.partition(":")
    if sep and head in WEIGHT_SOURCES:
        model, _, quality = rest.partition("@")
        if model not in ARCHITECTURES or not re.fullmatch(r"q\d+", quality):
            raise ValueError(
                f"expected '<{'|'.join(WEIGHT_SOURCES)}>:<model>@q<N>' with a model from "
                f"{', '.join(ARCHITECTURES)}, got {spec!r}"
            )
        return {"model": model, "weights": head, "qualities": [int(quality[1:])]}
    target, at, quality = spec.partition("@")
    if is_import_path(target):
        out = {"model": target}
        if at:
            out["qualities"] = [parse_quality(quality)]
        return out
    raise ValueError(
        f"expected '<{'|'.join(WEIGHT_SOURCES)}>:<model>@q<N>' or 'package.module:factory[@quality]', got {spec!r}"
    )


def import_factory(path: str):
    """The callable named by ``package.module:attr``, imported from ``sys.path`` (the caller puts the
    suite's roots there: :func:`pytest_nicrobust.codecs.imports.importing`)."""
    from .. import CodecError

    module_name, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or an error inside the user's module
        raise CodecError(f"cannot import {module_name!r} for codec {path!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise CodecError(f"module {module_name!r} has no attribute {attr!r} (codec {path!r})")
    if not callable(obj):
        raise CodecError(f"codec {path!r} is not callable")
    refuse_non_factory(path, obj)
    return obj


def _home(obj) -> str:
    """The module that defines ``obj`` (a function, class, bound method or other callable)."""
    target = getattr(obj, "__func__", obj)
    home = (
        getattr(target, "__module__", None)
        if (inspect.isfunction(target) or inspect.isclass(target) or inspect.isbuiltin(target))
        else None
    )
    return home or getattr(type(target), "__module__", "") or ""


def _library(module: str) -> str | None:
    top = (module or "").split(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        return "Python's standard library"
    if top in NOT_FACTORIES:
        return f"the package {top!r}"
    return None


def refuse_non_factory(path: str, obj) -> None:
    """Refuse, before it is called, a callable that cannot be a codec factory: one of the standard
    library or a builtin (``os:system``, ``shutil:rmtree``), a ``functools.partial`` of one, or one
    of the plugin's own dependencies. A suite key never reaches it."""
    from .. import CodecError

    inner = obj
    while isinstance(inner, functools.partial):
        inner = inner.func
    named = _library(path.partition(":")[0])
    kind = "builtin" if inspect.isbuiltin(inner) or inspect.ismethoddescriptor(inner) else None
    where = named or _library(_home(inner)) or (kind and "Python's builtins")
    if where:
        raise CodecError(
            f"codec {path!r}: {getattr(inner, '__qualname__', type(inner).__name__)} comes from {where}, "
            "not a codec factory (a factory is your own code that returns a Codec); refused before "
            "any suite key reached it"
        )


def resolve_factory(model: str):
    """The factory of an external codec: an import path or an entry-point name."""
    from .. import CodecError

    if is_import_path(model):
        return import_factory(model)
    plugins = external_codecs()
    if model not in plugins:
        raise CodecError(f"unknown codec model {model!r}; known: {', '.join(known_models())}")
    factory = plugins[model].load()
    refuse_non_factory(plugins[model].value, factory)
    return factory


def call_factory(factory, model: str, **kwargs):
    """Call ``factory`` with the keywords it accepts; refuse suite keys it cannot take.

    Every external factory gets ``name, quality, weights, device`` and the extra keys of its
    ``[[codecs]]`` table. Factories written for the older ``(quality, weights, device)``
    signature keep working: keywords they do not declare are not passed, unless they are
    extra suite keys, which would otherwise be silently lost.
    """
    from .. import CodecError

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory(**kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return factory(**kwargs)
    standard = ("name", "quality", "weights", "device")
    lost = [k for k in kwargs if k not in params and k not in standard]
    if lost:
        raise CodecError(
            f"codec {model!r}: its factory takes no {', '.join(map(repr, lost))} "
            f"(suite keys are passed as keyword arguments; add them or **options to the factory)"
        )
    return factory(**{k: v for k, v in kwargs.items() if k in params})
