"""CompressAI image models as :class:`~pytest_nicrobust.codecs.base.Codec`.

Gradients pass through quantisation by a proxy that replaces the ``quantize``
method of the entropy modules only (the rest of the model stays in eval mode):

* ``noise``: additive uniform noise U(-0.5, 0.5), drawn from the attack's seeded generator;
* ``ste``:   straight-through rounding (round in the forward pass, identity gradient).

Real bitrate comes from ``compress()``; the reconstruction C(x) from ``decompress()``.
"""

from __future__ import annotations

import contextlib

import torch

from .. import CodecError
from .base import Codec, CodecInfo, check_finite

PROXIES = ("noise", "ste")


def _entropy_modules(model):
    from compressai.entropy_models import EntropyModel

    return [m for m in model.modules() if isinstance(m, EntropyModel)]


@contextlib.contextmanager
def quantization_proxy(model, proxy: str, generator: torch.Generator | None):
    """Temporarily make every entropy module quantise with a differentiable proxy."""
    if proxy not in PROXIES:
        raise ValueError(f"unknown quantization proxy {proxy!r}; choose from {PROXIES}")
    modules = _entropy_modules(model)

    def make(original):
        def quantize(inputs, mode, means=None):
            if mode == "symbols":
                return original(inputs, mode, means)
            if proxy == "noise":
                noise = torch.rand(inputs.shape, generator=generator, device=inputs.device, dtype=inputs.dtype)
                return inputs + (noise - 0.5)
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


def non_finite_weights(model) -> list[str]:
    """Names of the parameters and buffers holding NaN or infinity."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, t in tensors if t.is_floating_point() and not torch.isfinite(t).all()]


@contextlib.contextmanager
def _guarded(model, label: str):
    """Check what reaches the entropy coders: a NaN latent sends CompressAI's rANS encoder
    into an endless loop, so non-finite inputs (or means) raise NonFiniteError instead."""
    modules = _entropy_modules(model)

    def make(original):
        def compress(inputs, *args, **kwargs):  # (inputs) or (inputs, indexes, means=None)
            check_finite(inputs, "the latent", label)
            means = kwargs.get("means", args[1] if len(args) > 1 else None)
            if isinstance(means, torch.Tensor):
                check_finite(means, "the predicted mean", label)
            return original(inputs, *args, **kwargs)

        return compress

    for module in modules:
        module.compress = make(module.compress)
    try:
        yield
    finally:
        for module in modules:
            del module.compress


class CompressAICodec(Codec):
    """Wraps a CompressAI ``CompressionModel`` (already loaded, ``update(force=True)`` done here)."""

    def __init__(self, model, info: CodecInfo, device="cpu"):
        super().__init__(info, device)
        bad = non_finite_weights(model)
        if bad:
            where = info.details.get("file") or info.weights
            raise CodecError(f"codec {info.label}: the weights ({where}) hold NaN or infinite values in "
                             f"{len(bad)} tensor(s), e.g. {', '.join(bad[:3])}")
        model.update(force=True)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def identity(self) -> dict:
        from importlib.metadata import version

        return {**super().identity(), "architecture": self.info.architecture, "compressai": version("compressai")}

    def _forward_padded(self, x, proxy, generator):
        with quantization_proxy(self.model, proxy, generator):
            out = self.model(x)
        bits = sum(
            (-torch.log2(lk)).flatten(1).sum(dim=1) for lk in out["likelihoods"].values()
        )
        return out["x_hat"], bits

    def _roundtrip_padded(self, x):
        with _guarded(self.model, self.label):
            enc = self.model.compress(x)
        dec = self.model.decompress(enc["strings"], enc["shape"])
        nbytes = [sum(len(stream[i]) for stream in enc["strings"]) for i in range(x.shape[0])]
        return dec["x_hat"], nbytes


@torch.no_grad()
def encoder_side_reconstruction(model, x: torch.Tensor) -> torch.Tensor:
    """x_hat from the latents exactly as the encoder quantises them (no bitstream).

    ``decompress()`` must reproduce this bit for bit (tests/test_shipped_checkpoints.py,
    scripts/eval_rd.py).
    """
    from compressai.models.google import FactorizedPrior, MeanScaleHyperprior, ScaleHyperprior

    def eb_hat(eb, t):
        med = eb._get_medians().detach().reshape(1, -1, 1, 1)
        return torch.round(t - med) + med

    y = model.g_a(x)
    if isinstance(model, FactorizedPrior):
        y_hat = eb_hat(model.entropy_bottleneck, y)
    elif isinstance(model, MeanScaleHyperprior):
        z_hat = eb_hat(model.entropy_bottleneck, model.h_a(y))
        _, means = model.h_s(z_hat).chunk(2, 1)
        y_hat = torch.round(y - means) + means
    elif isinstance(model, ScaleHyperprior):
        z_hat = eb_hat(model.entropy_bottleneck, model.h_a(torch.abs(y)))
        y_hat = torch.round(y)
    else:
        raise TypeError(f"no encoder-side reconstruction for {type(model).__name__}")
    return model.g_s(y_hat).clamp_(0, 1)


# ---------------------------------------------------------------------------
# Loading


def architectures():
    from compressai.zoo.image import model_architectures

    return model_architectures


def _float32(state_dict):
    return {k: (v.float() if torch.is_floating_point(v) else v) for k, v in state_dict.items()}


def load_state_dict_file(path, what: str):
    """``torch.load`` with ``weights_only=True``; a clear CodecError for anything else."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CodecError(f"{what}: checkpoint file not found: {path}") from None
    except Exception as exc:  # corrupt file, pickle with code, wrong format
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        if "weights_only" in str(exc) or "Unpickl" in type(exc).__name__:
            first = "torch.load(weights_only=True) refused it: not a file of plain tensors (corrupt, or it holds code)"
        raise CodecError(f"{what}: cannot read checkpoint {path}: {type(exc).__name__}: {first}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CodecError(f"{what}: {path} does not hold a state_dict of tensors")
    return obj


def model_from_state_dict(architecture: str, state_dict, what: str, N=None, M=None):
    cls = architectures()[architecture]
    state_dict = _float32(state_dict)
    try:
        if N is not None:
            model = cls(N=N, M=M)
            model.load_state_dict(state_dict)
        else:
            model = cls.from_state_dict(state_dict)
    except Exception as exc:
        raise CodecError(
            f"{what}: checkpoint does not fit architecture {architecture!r}: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    return model


def infer_architecture(state_dict, what: str) -> str:
    """The CompressAI architecture whose layers a state_dict fits exactly."""
    fits = []
    for name, cls in architectures().items():
        try:
            cls.from_state_dict(_float32(state_dict))
            fits.append(name)
        except Exception:
            continue
    if not fits:
        raise CodecError(f"{what}: fits no CompressAI architecture; name it with --model")
    return fits[0]


def random_model(architecture: str, quality: int):
    from compressai.zoo.image import cfgs

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same random codec in every worker
        return architectures()[architecture](*cfgs[architecture][quality])
