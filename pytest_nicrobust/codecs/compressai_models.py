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
from .base import Codec, CodecInfo, NonFiniteError, check_finite

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


# CompressAI's rANS coder (compressai/cpp_exts/rans/rans_interface.cpp, v1.2.8 = commit 79e5187):
# a symbol outside a CDF's support is escaped as raw_val = 2 * |symbol - offset| (uint32) and sent in
# 4-bit chunks counted by ``while ((raw_val >> (n_bypass * 4)) != 0) ++n_bypass``. From raw_val >= 2**28
# the shift reaches 32 bits (undefined; x86 masks it to 0) and the loop never ends, holding the GIL;
# above 2**31 the float -> int32 cast of the symbol is undefined too. So a symbol (latent minus its mean
# or median) must stay below 2**27 in magnitude; the guard allows 2**26, leaving room for the offsets
# and CDF lengths (at most a few thousand). A trained model's latents are below 1e3.
CODER_RANGE = 2 ** 26


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
        raise CoderRangeError(f"codec {label}: {what} is outside the entropy coder's range (|value| up to "
                              f"{worst:.3g} > {bound:.3g}) for image(s) {bad} of the batch", bad)


def _medians(module, inputs):
    try:
        med = module._get_medians().detach()
        return med.reshape(1, -1, *([1] * (inputs.dim() - 2)))
    except Exception:  # another entropy model: no medians
        return None


@contextlib.contextmanager
def _guarded(model, label: str):
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
                    raise CoderRangeError(f"codec {label}: the scales give CDF indexes outside 0..{n - 1} "
                                          f"for image(s) {bad} of the batch", bad)
            return original(inputs, *args, **kwargs)

        return compress

    for module in modules:
        module.compress = make(module, module.compress)
    try:
        yield
    finally:
        for module in modules:
            del module.compress


def known_quality(sha256: str, architecture: str) -> tuple[str, int] | None:
    """(where, quality) of a checkpoint this plugin knows by content: a shipped one (manifest
    SHA-256) or one of CompressAI's zoo (the SHA-256 prefix in its URL), else None."""
    from .shipped import manifest

    for entry in manifest().get("models", []):
        if entry.get("sha256") == sha256:
            return f"the shipped {entry['architecture']}@q{entry['quality']} checkpoint", int(entry["quality"])
    try:
        from compressai.zoo.image import model_urls
    except ImportError:
        return None
    for metric, urls in (model_urls.get(architecture) or {}).items():
        for quality, url in urls.items():
            tag = url.rsplit("-", 1)[-1].split(".")[0]
            if len(tag) >= 8 and sha256.startswith(tag):
                return f"CompressAI's zoo {architecture} ({metric}) q{quality} checkpoint", int(quality)
    return None


def warn_if_mislabelled(info: CodecInfo) -> None:
    """A warning when the weights are a checkpoint known for another quality than the label says
    (a q3 file under ``qualities = [1]``): the numbers would be reported under the wrong bitrate."""
    import warnings

    from .. import NicrobustWarning

    sha = info.details.get("sha256")
    if not sha or not isinstance(info.quality, int) or info.weights in ("nicrobust", "zoo", "random"):
        return
    known = known_quality(sha, info.architecture)
    if known and known[1] != info.quality:
        warnings.warn(NicrobustWarning(f"codec {info.label}[q{info.quality}]: its weights "
                                       f"({info.details.get('file') or info.weights}) are {known[0]} "
                                       f"(SHA-256 match), labelled q{info.quality}"))


class CompressAICodec(Codec):
    """Wraps a CompressAI ``CompressionModel`` (already loaded, ``update(force=True)`` done here)."""

    def __init__(self, model, info: CodecInfo, device="cpu"):
        super().__init__(info, device)
        bad = non_finite_weights(model)
        if bad:
            where = info.details.get("file") or info.weights
            raise CodecError(f"codec {info.label}: the weights ({where}) hold NaN or infinite values in "
                             f"{len(bad)} tensor(s), e.g. {', '.join(bad[:3])}")
        warn_if_mislabelled(info)
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


def read_checkpoint(path, what: str):
    """The object in a checkpoint file, read with ``torch.load(weights_only=True)`` (tensors and plain
    containers only); a clear CodecError naming ``what`` and the file for anything else."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CodecError(f"{what}: checkpoint file not found: {path}") from None
    except Exception as exc:  # corrupt file, pickle with code, wrong format
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        if "weights_only" in str(exc) or "Unpickl" in type(exc).__name__:
            first = "torch.load(weights_only=True) refused it: not a file of plain tensors (corrupt, or it holds code)"
        raise CodecError(f"{what}: cannot read checkpoint {path}: {type(exc).__name__}: {first}") from None
    return obj


def load_state_dict_file(path, what: str):
    """A state_dict of tensors (CompressAI's ``{"state_dict": ...}`` checkpoints unwrapped), from :func:`read_checkpoint`."""
    obj = read_checkpoint(path, what)
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
