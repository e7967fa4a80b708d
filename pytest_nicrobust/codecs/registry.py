"""Which codec a suite names, without loading it (no torch): built-in, entry point or import path.

* a CompressAI architecture (:data:`ARCHITECTURES`) with weights from :data:`WEIGHT_SOURCES`
  or a checkpoint path;
* an entry point of the group ``pytest_nicrobust.codecs`` (an installed package);
* an import path ``package.module:factory``, imported from ``sys.path`` with the rootdir and
  the suite's folder added, as pytest imports conftest-adjacent code.

External factories are called as ``factory(name=..., quality=..., weights=..., device=..., **options)``
(see :func:`call_factory` and the README's "Bring your own codec").

Trust: a suite file names code to import and call, as a ``conftest.py`` does, but only from the
suite's own roots (its folder, the rootdir, a ``path`` it gives) or an installed package declaring
the entry-point group: the rule and its checks are :mod:`.imports`; whatever a factory returns that
is not a Codec is refused after the call.
"""

from __future__ import annotations

import importlib
import inspect
import re

from .imports import ENTRY_POINT_GROUP, Refused, check_entry_point, check_home, import_target

ARCHITECTURES = (
    "bmshj2018-factorized",
    "bmshj2018-hyperprior",
    "mbt2018-mean",
    "mbt2018",
    "cheng2020-anchor",
    "cheng2020-attn",
)
WEIGHT_SOURCES = ("nicrobust", "zoo", "random")

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


def import_factory(path: str, folders: tuple[str, ...] = ()):
    """The callable named by ``package.module:attr``, from the suite's roots ``folders`` (the caller
    puts them on ``sys.path``: :func:`pytest_nicrobust.codecs.imports.importing`) or a codec package;
    the trust model's rule (:mod:`.imports`) is applied before the module is imported and before the
    callable is called."""
    from .. import CodecError

    try:
        obj = import_target(path, folders)
    except Refused as exc:
        raise CodecError(f"codec {path!r}: {exc}") from None
    except Exception as exc:  # ImportError, or an error inside the user's module
        module_name = path.partition(":")[0]
        raise CodecError(f"cannot import {module_name!r} for codec {path!r}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise CodecError(f"codec {path!r} is not callable")
    return obj


def resolve_factory(model: str, folders: tuple[str, ...] = ()):
    """The factory of an external codec: an import path or an entry-point name."""
    from .. import CodecError

    if is_import_path(model):
        return import_factory(model, folders)
    plugins = external_codecs()
    if model not in plugins:
        raise CodecError(f"unknown codec model {model!r}; known: {', '.join(known_models())}")
    try:
        check_entry_point(plugins[model])
        factory = plugins[model].load()
        check_home(factory, ())
    except Refused as exc:
        raise CodecError(f"codec {model!r}: {exc}") from None
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
