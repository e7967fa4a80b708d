"""Codecs: built-in CompressAI architectures, the shipped checkpoints, and your own.

Importing this package imports no torch; :func:`load_codec` does, lazily.

Weights sources for the CompressAI architectures:

* ``"nicrobust"``: the small checkpoints shipped inside this package (works offline);
* ``"zoo"``: CompressAI's pretrained models via the torch hub cache (SHA-256 checked);
* ``"random"``: random initialisation, only when asked for, labelled in every report;
* any other string: a local checkpoint path (``{quality}`` is replaced by the quality).

External codecs are named by an import path ``package.module:factory`` or by an entry point
of the group ``pytest_nicrobust.codecs``; the factory returns a
:class:`~pytest_nicrobust.codecs.base.Codec` (the contract is in that module's docstring).
:func:`check` tests a codec against that contract (``python -m pytest_nicrobust check-codec``).
"""

from __future__ import annotations

from .. import lazy_attribute
from .registry import (
    ARCHITECTURES,
    CODEC_KINDS,
    ENTRY_POINT_GROUP,
    WEIGHT_SOURCES,
    call_factory,
    codec_kind,
    external_codecs,
    is_import_path,
    known_models,
    parse_spec,
    resolve_factory,
)

__all__ = [
    "ARCHITECTURES",
    "CODEC_KINDS",
    "ENTRY_POINT_GROUP",
    "WEIGHT_SOURCES",
    "call_factory",
    "check",
    "codec_kind",
    "external_codecs",
    "is_import_path",
    "known_models",
    "load_codec",
    "load_entry",
    "parse_spec",
    "resolve_factory",
]
_LAZY = {"load_codec": "loading", "load_entry": "loading", "check": "checks.conformance"}


def __getattr__(attr):
    """``load_codec``, ``load_entry`` (:mod:`.loading`) and ``check`` (:mod:`.checks.conformance`), imported on first use."""
    if attr not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    return lazy_attribute(__name__, _LAZY[attr], attr)
