"""Codec registry: built-in CompressAI architectures, the shipped checkpoints, and plug-ins.

Importing this package imports no torch; :func:`load_codec` does, lazily.

Weights sources for the CompressAI architectures:

* ``"nicrobust"``: the small checkpoints shipped inside this package (works offline);
* ``"zoo"``: CompressAI's pretrained models via the torch hub cache (SHA-256 checked);
* ``"random"``: random initialisation, only when asked for, labelled in every report;
* any other string: a local checkpoint path (``{quality}`` is replaced by the quality).

External codecs register a factory under the entry-point group ``pytest_nicrobust.codecs``;
the factory is called as ``factory(quality=..., weights=..., device=...)`` and returns a
:class:`~pytest_nicrobust.codecs.base.Codec`.
"""

from __future__ import annotations

import os

from .. import CodecError

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


def external_codecs() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_models() -> list[str]:
    return list(ARCHITECTURES) + sorted(external_codecs())


def load_codec(model: str, weights: str, quality: int | None, device="cpu", label: str | None = None, base_dir: str = "."):
    """Build a ready-to-use codec (``update(force=True)`` done, eval mode, on ``device``)."""
    from .base import CodecInfo
    from .compressai_models import CompressAICodec, load_state_dict_file, model_from_state_dict, random_model

    label = label or (model if quality is None else f"{model}[q{quality}]")
    if model not in ARCHITECTURES:
        plugins = external_codecs()
        if model not in plugins:
            raise CodecError(f"unknown codec model {model!r}; known: {', '.join(known_models())}")
        return plugins[model].load()(quality=quality, weights=weights, device=device)

    details = {}
    if weights == "random":
        net = random_model(model, quality)
    elif weights == "zoo":
        from . import zoo

        path = zoo.fetch(model, quality)
        from compressai.zoo.pretrained import load_pretrained

        sd = load_pretrained(load_state_dict_file(path, label))
        net = model_from_state_dict(model, sd, label)
        details["file"] = path
    elif weights == "nicrobust":
        from .shipped import shipped_entry, shipped_path

        entry = shipped_entry(model, quality)
        sd = load_state_dict_file(shipped_path(entry), label)
        net = model_from_state_dict(model, sd, label, N=entry["N"], M=entry["M"])
        details.update({k: entry[k] for k in ("N", "M", "lambda", "sha256") if k in entry})
    else:
        path = weights.replace("{quality}", str(quality))
        if not os.path.isabs(path):
            path = os.path.join(base_dir, path)
        sd = load_state_dict_file(path, label)
        net = model_from_state_dict(model, sd, label)
        details["file"] = path
    info = CodecInfo(label=label, architecture=model, quality=quality, weights=weights,
                     random_init=weights == "random", details=details)
    return CompressAICodec(net, info, device)
