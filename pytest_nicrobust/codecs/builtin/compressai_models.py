"""CompressAI image models as :class:`~pytest_nicrobust.codecs.base.Codec`, and how they are built.

Gradients pass through quantisation by the proxy of :mod:`..quantization` (the entropy modules
only; the rest of the model stays in eval mode). Real bitrate comes from ``compress()``, behind
the coder guard, one stream per image in the plugin's container (:mod:`..container`); the
reconstruction C(x) from ``decompress()`` of each stream. :func:`load` builds one from a
weights source: the shipped checkpoints, CompressAI's zoo, a file, or a seeded random init.
"""

from __future__ import annotations

import os

import torch

from ... import CodecError
from ...files import sha256_of
from .. import container
from ..base import Codec, CodecInfo
from ..checkpoints import float32, load_state_dict_file
from ..quantization import guard_coder, quantization_proxy


def non_finite_weights(model) -> list[str]:
    """Names of the parameters and buffers holding NaN or infinity."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, t in tensors if t.is_floating_point() and not torch.isfinite(t).all()]


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

    from ... import NicrobustWarning

    sha = info.details.get("sha256")
    if not sha or not isinstance(info.quality, int) or info.weights in ("nicrobust", "zoo", "random"):
        return
    known = known_quality(sha, info.architecture)
    if known and known[1] != info.quality:
        warnings.warn(
            NicrobustWarning(
                f"codec {info.label}[q{info.quality}]: its weights "
                f"({info.details.get('file') or info.weights}) are {known[0]} "
                f"(SHA-256 match), labelled q{info.quality}"
            ),
            stacklevel=2,
        )


class CompressAICodec(Codec):
    """Wraps a CompressAI ``CompressionModel`` (already loaded, ``update(force=True)`` done here)."""

    def __init__(self, model, info: CodecInfo, device="cpu"):
        super().__init__(info, device)
        bad = non_finite_weights(model)
        if bad:
            where = info.details.get("file") or info.weights
            raise CodecError(
                f"codec {info.label}: the weights ({where}) hold NaN or infinite values in "
                f"{len(bad)} tensor(s), e.g. {', '.join(bad[:3])}"
            )
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
        bits = sum((-torch.log2(lk)).flatten(1).sum(dim=1) for lk in out["likelihoods"].values())
        return out["x_hat"], bits

    def _encode_padded(self, x):
        """One stream per image: its strings and latent shape in the plugin's container (:mod:`..container`)."""
        with guard_coder(self.model, self.label):
            enc = self.model.compress(x)
        size = (x.shape[-2], x.shape[-1])
        s = container.stride_log2(size, enc["shape"])
        return [container.pack([[strings[i]] for strings in enc["strings"]], size, s) for i in range(x.shape[0])]

    @torch.no_grad()
    def _decode_padded(self, stream):
        found = container.unpack(stream, self.max_pixels, self.latent_stride())
        return self.model.decompress(found.strings, found.shape())["x_hat"][0]

    def _coded_size(self, h: int, w: int) -> tuple[int, int]:
        """The size the model codes for a padded image of h x w (larger for a codec with a smallest size)."""
        return h, w

    @torch.no_grad()
    def latent_stride(self) -> int:
        """log2 of how much smaller than the coded image the latent shape of ``compress()`` is, found
        once by compressing a flat image of the codec's multiple: what a stream must declare."""
        if getattr(self, "_latent_stride", None) is None:
            coded = self._coded_size(self.multiple, self.multiple)
            with guard_coder(self.model, self.label):
                enc = self.model.compress(torch.full((1, 3, *coded), 0.5, device=self.device))
            self._latent_stride = container.stride_log2(coded, enc["shape"])
        return self._latent_stride

    def _container_bytes(self, stream):
        return container.header_bytes(stream)  # bpp counts what compress() emits, as the README defines it


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


def model_from_state_dict(architecture: str, state_dict, what: str, N=None, M=None):
    cls = architectures()[architecture]
    state_dict = float32(state_dict)
    try:
        if N is not None:
            model = cls(N=N, M=M)
            model.load_state_dict(state_dict)
        else:
            model = cls.from_state_dict(state_dict)
    except Exception as exc:
        fits = [name for name in _fitting(state_dict) if name != architecture]
        if fits:  # another architecture's checkpoint: say which, not a list of missing keys
            raise CodecError(
                f"{what}: the checkpoint is a {fits[0]} (read from its keys), not {architecture}: "
                f'set model = "{fits[0]}"'
            ) from None
        raise CodecError(
            f"{what}: checkpoint does not fit architecture {architecture!r}: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    return model


def _fitting(state_dict) -> list[str]:
    """The CompressAI architectures whose layers a state_dict fits exactly."""
    fits = []
    for name, cls in architectures().items():
        try:
            cls.from_state_dict(float32(state_dict))
            fits.append(name)
        except Exception:
            continue
    return fits


def infer_architecture(state_dict, what: str) -> str:
    """The CompressAI architecture whose layers a state_dict fits exactly."""
    fits = _fitting(state_dict)
    if not fits:
        raise CodecError(f"{what}: fits no CompressAI architecture; name it with --model")
    return fits[0]


def random_model(architecture: str, quality: int):
    from compressai.zoo.image import cfgs

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same random codec in every worker
        return architectures()[architecture](*cfgs[architecture][quality])


def load(model, weights, quality, device, label):
    """A CompressAI architecture with weights from ``nicrobust`` (shipped), ``zoo``, ``random`` or a
    checkpoint path (``{quality}`` filled in)."""

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
    info = CodecInfo(
        label=label,
        architecture=model,
        quality=quality,
        weights=weights,
        random_init=weights == "random",
        details=details,
    )
    return CompressAICodec(net, info, device)
