"""Quantisation as the attacks see it, and the guard in front of CompressAI's entropy coder.

Gradients pass through quantisation by a *proxy* chosen per attack run; the rest of a model
stays in eval mode:

* ``noise``: additive uniform noise U(-0.5, 0.5), drawn from the attack's seeded generator;
* ``ste``: straight-through rounding (round in the forward pass, identity gradient).

:func:`quantization_proxy` applies them to CompressAI's entropy modules (the shipped codecs, models
named by class, QRes-VAE); :func:`uniform_noise` and :class:`RoundSTE` are the pieces the other
adapters (EVC, HiFiC) put where their own model rounds. :func:`guard_coder` checks what reaches
CompressAI's native rANS coder, which never returns on some inputs.
"""

from __future__ import annotations

import contextlib

import torch

from .base import NonFiniteError, check_finite

PROXIES = ("noise", "ste")


def _entropy_modules(model):
    from compressai.entropy_models import EntropyModel

    return [m for m in model.modules() if isinstance(m, EntropyModel)]


@contextlib.contextmanager
def quantization_proxy(model, proxy: str, generator: torch.Generator | None):
    """Temporarily make every entropy module quantise with a differentiable proxy."""
    check_proxy(proxy)
    modules = _entropy_modules(model)

    def make(original):
        def quantize(inputs, mode, means=None):
            if mode == "symbols":
                return original(inputs, mode, means)
            if proxy == "noise":
                return uniform_noise(inputs, generator)
            centred = inputs if means is None else inputs - means
            rounded = centred + (torch.round(centred) - centred).detach()
            return rounded if means is None else rounded + means

        return quantize

    for module in modules:
        module.quantize = make(module.quantize)  # instance attribute shadows the method
    try:
        yield
    finally:
        for module in modules:
            del module.quantize


# CompressAI's rANS coder (compressai/cpp_exts/rans/rans_interface.cpp, v1.2.8 = commit 79e5187):
# a symbol outside a CDF's support is escaped as raw_val = 2 * |symbol - offset| (uint32) and sent in
# 4-bit chunks counted by ``while ((raw_val >> (n_bypass * 4)) != 0) ++n_bypass``. From raw_val >= 2**28
# the shift reaches 32 bits (undefined; x86 masks it to 0) and the loop never ends, holding the GIL;
# above 2**31 the float -> int32 cast of the symbol is undefined too. So a symbol (latent minus its mean
# or median) must stay below 2**27 in magnitude; the guard allows 2**26, leaving room for the offsets
# and CDF lengths (at most a few thousand). A trained model's latents are below 1e3.
CODER_RANGE = 2**26


class CoderRangeError(NonFiniteError):
    """A latent, mean or CDF index outside what CompressAI's entropy coder can code (see CODER_RANGE)."""


def _out_of_range(t: torch.Tensor, bound: float) -> list[int]:
    """Indices along dim 0 of the entries whose magnitude exceeds ``bound``."""
    big = t.detach().reshape(t.shape[0], -1).abs().amax(dim=1) > bound
    return big.nonzero().flatten().tolist()


def _check_range(t: torch.Tensor, what: str, label: str, bound: float = CODER_RANGE) -> None:
    bad = _out_of_range(t, bound)
    if bad:
        worst = float(t.detach().abs().max())
        raise CoderRangeError(
            f"codec {label}: {what} is outside the entropy coder's range (|value| up to "
            f"{worst:.3g} > {bound:.3g}) for image(s) {bad} of the batch",
            bad,
        )


def _medians(module, inputs):
    try:
        med = module._get_medians().detach()
        return med.reshape(1, -1, *([1] * (inputs.dim() - 2)))
    except Exception:  # another entropy model: no medians
        return None


@contextlib.contextmanager
def guard_coder(model, label: str):
    """Check what reaches the entropy coders, before the native coder runs: a NaN latent, or one
    beyond :data:`CODER_RANGE` (huge but finite), sends CompressAI's rANS encoder into an endless
    loop, and a CDF index outside the table reads past it. Non-finite inputs or means raise
    :class:`NonFiniteError`, out-of-range ones :class:`CoderRangeError`, naming the images.

    Scales never reach the coder: ``build_indexes`` maps every scale onto the scale table (a NaN
    scale included), so the indexes are checked instead.
    """
    modules = _entropy_modules(model)

    def make(module, original):
        def compress(inputs, *args, **kwargs):  # (inputs) or (inputs, indexes, means=None)
            check_finite(inputs, "the latent", label)
            means = kwargs.get("means", args[1] if len(args) > 1 else None)
            indexes = kwargs.get("indexes", args[0] if args else None)
            if isinstance(means, torch.Tensor):
                check_finite(means, "the predicted mean", label)
                _check_range(means, "the predicted mean", label)
                _check_range(inputs - means, "the latent minus its mean", label)
            else:
                _check_range(inputs, "the latent", label)
                med = _medians(module, inputs)
                if med is not None and med.shape[1] == inputs.shape[1]:
                    _check_range(inputs - med, "the latent minus its median", label)
            if isinstance(indexes, torch.Tensor) and getattr(module, "_cdf_length", None) is not None:
                n = module._cdf_length.numel()
                wrong = ((indexes < 0) | (indexes >= n)).reshape(indexes.shape[0], -1).any(dim=1)
                if n and wrong.any():
                    bad = wrong.nonzero().flatten().tolist()
                    raise CoderRangeError(
                        f"codec {label}: the scales give CDF indexes outside 0..{n - 1} "
                        f"for image(s) {bad} of the batch",
                        bad,
                    )
            return original(inputs, *args, **kwargs)

        return compress

    for module in modules:
        module.compress = make(module, module.compress)
    try:
        yield
    finally:
        for module in modules:
            del module.compress


def uniform_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The ``noise`` proxy: ``x`` + U(-0.5, 0.5) drawn from ``generator`` (same state, same noise)."""
    return x + (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 0.5)


class RoundSTE(torch.autograd.Function):
    """The ``ste`` proxy for a model that rounds with ``torch.round``: the exact rounding forward,
    the gradient passed unchanged."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def check_proxy(proxy: str) -> None:
    if proxy not in PROXIES:
        raise ValueError(f"unknown quantization proxy {proxy!r}; choose from {PROXIES}")
