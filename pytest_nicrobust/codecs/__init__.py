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

import os

from .. import CodecError
from .registry import (ARCHITECTURES, ENTRY_POINT_GROUP, KINDS, WEIGHT_SOURCES, call_factory, codec_kind,  # noqa: F401
                       external_codecs, is_import_path, known_models, parse_spec, resolve_factory)


def load_codec(model: str, weights: str | None, quality, device="cpu", label: str | None = None,
               options: dict | None = None, search: tuple[str, ...] = ()):
    """Build a ready-to-use codec (``update(force=True)`` done, eval mode, on ``device``).

    ``options`` are the extra keys of a suite's ``[[codecs]]`` table (external codecs only);
    ``search`` folders are put on ``sys.path`` before an import path is imported.
    """
    label = label or model
    kind = codec_kind(model)
    if kind is not None:
        return _checked_codec(kind.load(model, weights, quality, device, label, options or {}), model)
    if model not in ARCHITECTURES:
        factory = resolve_factory(model, search)
        codec = call_factory(factory, model, name=label, quality=quality, weights=weights, device=device,
                             **(options or {}))
        return _checked_codec(codec, model)
    if options:
        raise CodecError(f"{label}: CompressAI models take no options ({', '.join(options)})")
    return _load_compressai(model, weights or "nicrobust", quality, device, label)


def _checked_codec(codec, model: str):
    from .base import Codec

    if not isinstance(codec, Codec):
        raise CodecError(f"codec {model!r}: its factory returned {type(codec).__name__}, "
                         "not a pytest_nicrobust.codecs.base.Codec")
    return codec


def _load_compressai(model, weights, quality, device, label):
    from .base import CodecInfo
    from .compressai_models import CompressAICodec, load_state_dict_file, model_from_state_dict, random_model
    from ..files import sha256_of

    what = f"{label}[q{quality}]"
    details = {}
    if weights == "random":
        net = random_model(model, quality)
    elif weights == "zoo":
        from . import zoo

        path = zoo.fetch(model, quality)
        from compressai.zoo.pretrained import load_pretrained

        sd = load_pretrained(load_state_dict_file(path, what))
        net = model_from_state_dict(model, sd, what)
        details.update(file=path, sha256=sha256_of(path))
    elif weights == "nicrobust":
        from .shipped import shipped_entry, shipped_path

        entry = shipped_entry(model, quality)
        path = shipped_path(entry)
        sd = load_state_dict_file(path, what)
        net = model_from_state_dict(model, sd, what, N=entry["N"], M=entry["M"])
        details.update({k: entry[k] for k in ("N", "M", "lambda", "sha256") if k in entry}, file=path)
    else:
        path = os.path.abspath(weights.replace("{quality}", str(quality)))
        sd = load_state_dict_file(path, what)
        net = model_from_state_dict(model, sd, what)
        details.update(file=path, sha256=sha256_of(path))
    info = CodecInfo(label=label, architecture=model, quality=quality, weights=weights,
                     random_init=weights == "random", details=details)
    return CompressAICodec(net, info, device)


def load_entry(entry, device="cpu", search: tuple[str, ...] = ()):
    """The codec of a suite's :class:`~pytest_nicrobust.config.cases.CodecEntry`."""
    return load_codec(entry.model, entry.weights, entry.quality, device, entry.label, entry.options,
                      tuple(search) + ((entry.home,) if entry.home else ()))


def check(codec, **kwargs):
    """Conformance check of a codec against the contract; see :mod:`pytest_nicrobust.codecs.conformance`."""
    from .conformance import check as _check

    return _check(codec, **kwargs)
