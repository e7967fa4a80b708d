"""Loading the codec a suite names: a built-in CompressAI architecture, a codec kind, or a factory.

:func:`load_codec` turns a suite's codec keys into a ready-to-use
:class:`~pytest_nicrobust.codecs.base.Codec` (eval mode, ``update(force=True)`` done, on the
device); :func:`load_entry` does it for a :class:`~pytest_nicrobust.config.cases.CodecEntry`.
"""

from __future__ import annotations

import contextlib

from .. import CodecError
from ..names import codec_label, quality_tag
from ..seeding import derive_seed
from .imports import importing, roots
from .registry import ARCHITECTURES, call_factory, codec_kind, resolve_factory

_CACHE_FOLDER: list[str | None] = [None]


def use_cache_folder(folder: str | None) -> None:
    """The plugin's cache folder in this process (run/context.py sets it on every worker), where a codec
    kind may keep what it derives (JPEG AI's calibrated random weights); None: nothing is kept."""
    _CACHE_FOLDER[0] = folder


def cache_folder() -> str | None:
    return _CACHE_FOLDER[0]


def weights_seed(run_seed: int, display: str) -> int:
    """The seed a factory or a class builds its random weights under: the run seed and the codec's
    label with its quality (``ours[q3]``), the same in every xdist worker."""
    return derive_seed(run_seed, display, "weights")


@contextlib.contextmanager
def seeded(seed: int):
    """Every generator a factory or a class may draw random weights from (torch's on the CPU and the
    GPUs, NumPy's and Python's global ones) seeded with ``seed`` for the block and put back after."""
    import random

    import numpy as np
    import torch

    state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(state)
            np.random.set_state(np_state)


def load_codec(
    model: str,
    weights: str | None,
    quality,
    device="cpu",
    label: str | None = None,
    options: dict | None = None,
    search: tuple[str, ...] = (),
    seed: int = 0,
):
    """Build a ready-to-use codec (``update(force=True)`` done, eval mode, on ``device``).

    ``options`` are the extra keys of a suite's ``[[codecs]]`` table (external codecs only);
    ``search``: the folders a factory or a class is imported from (the suite's folder, the rootdir),
    on ``sys.path`` only while it imports and builds (:mod:`.imports`). ``seed``: the run seed; a
    factory or a class is called under :func:`seeded` with :func:`weights_seed` of it and the codec's
    label, so random weights are the same in every worker (a builder that draws from a generator of
    its own is not: ``check-codec`` builds twice and compares).
    """
    label = label or model
    kind = codec_kind(model)
    if kind is not None:
        with seeded(weights_seed(seed, codec_label(label, quality_tag(quality)))):  # a class's random weights
            codec = kind.load(model, weights, quality, device, label, options or {}, search=search)
        return _checked_codec(codec, model)
    if model not in ARCHITECTURES:
        if weights and "{quality}" in weights:  # as for a checkpoint: the file of this quality
            weights = weights.replace("{quality}", str(quality))
        with importing(search), seeded(weights_seed(seed, codec_label(label, quality_tag(quality)))):
            factory = resolve_factory(model, search)
            try:
                codec = call_factory(
                    factory, model, name=label, quality=quality, weights=weights, device=device, **(options or {})
                )
            except CodecError:
                raise
            except Exception as exc:  # the factory's own error: one line, not its traceback in every test
                text = (str(exc).strip().splitlines() or [""])[0][:300]
                raise CodecError(f"codec {label}: its factory {model} raised {type(exc).__name__}: {text}") from None
        return _checked_codec(codec, model)
    if options:
        raise CodecError(f"{label}: CompressAI models take no options ({', '.join(options)})")
    from .builtin.compressai_models import load

    return load(model, weights or "nicrobust", quality, device, label)


def _checked_codec(codec, model: str):
    from .base import Codec

    if not isinstance(codec, Codec):
        raise CodecError(
            f"codec {model!r}: its factory returned {type(codec).__name__}, not a pytest_nicrobust.codecs.base.Codec"
        )
    return codec


def load_entry(entry, device="cpu", search: tuple[str, ...] = (), seed: int = 0):
    """The codec of a suite's :class:`~pytest_nicrobust.config.cases.CodecEntry` (``seed``: the run seed)."""
    return load_codec(
        entry.model,
        entry.weights,
        entry.quality,
        device,
        entry.label,
        entry.options,
        roots(None, entry.home, tuple(search)),
        seed,
    )
