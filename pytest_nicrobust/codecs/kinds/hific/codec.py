"""HiFiC from the user's Justin-Tan/high-fidelity-generative-compression tree as a
:class:`~pytest_nicrobust.codecs.base.Codec`.

The adapter assembles HiFiC's own modules (its ``Encoder``, ``Generator`` and ``Hyperprior`` with
its entropy models) instead of its ``Model``, which builds an LPIPS loss with AlexNet weights
(a download) and a logger, and whose rate estimate is a batch mean. What it handles:

* **its package is named ``src``**, imported by absolute name: imported with any other ``src``
  set aside and put back after (all its imports run at module level);
* **the differentiable pass** is written here from its parts: hyperlatents and latents quantised by
  the attack's proxy (its eval path rounds the hyperlatents with no gradient), rounding as it does,
  ``floor(v + 0.5)`` around the predicted means; bits = Σ −log2 of its own likelihoods, per image;
* **real bytes**: its ``compress_forward`` / ``decompress_forward`` (its vectorised rANS in Python),
  one image at a time; an image's stream is the file its ``save_compressed_format`` writes (shapes,
  the two messages, separators), made in memory, and is read back as its ``load_compressed_format``
  reads it, every declared shape bounded first (:meth:`HiFiCCodec.read_file`);
* **small images**: its hyperprior's convolutions reflect-pad by 2, which fails on maps under 3
  pixels: images under :data:`MIN_SIZE` pixels a side are padded (replicate) up to it and cropped
  back, as the base class pads to the multiple;
* its progress bars and prints while building tables and coding are silenced.
"""

from __future__ import annotations

import contextlib
import io

import torch
import torch.nn.functional as F

from .... import CodecError
from ....files import sha256_of
from ...base import Codec, CodecInfo
from ...checkpoints import read_checkpoint
from ...imports import importing
from ...quantization import check_proxy, uniform_noise
from .. import public_trees
from .table import REGIMES

MODULES = (
    "src.network.encoder",
    "src.network.generator",
    "src.hyperprior",
    "src.helpers.maths",
    "src.compression.compression_utils",
)
CODE_FILES = (
    "src/hyperprior.py",
    "src/network/encoder.py",
    "src/network/generator.py",
    "src/network/hyper.py",
    "src/compression/hyperprior_model.py",
    "src/compression/prior_model.py",
    "src/compression/entropy_models.py",
    "src/compression/entropy_coding.py",
    "src/compression/ans.py",
    "src/compression/compression_utils.py",
    "src/helpers/maths.py",
)
MIN_SIZE = 128  # pixels a side: a 64-pixel image leaves 2 x 2 hyperlatent maps, too small for reflect padding
_IMPORTED: dict[str, dict] = {}


def pad_to_min_size(x: torch.Tensor) -> torch.Tensor:
    ph, pw = max(0, MIN_SIZE - x.shape[-2]), max(0, MIN_SIZE - x.shape[-1])
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def import_hific(folder: str) -> dict:
    """HiFiC's modules by short name (``encoder``, ``generator``, ``hyperprior``, ``maths``,
    ``compression_utils``), imported once per tree."""
    if folder not in _IMPORTED:
        import importlib

        try:
            with importing((folder,), tree=folder, names={"src"}):
                _IMPORTED[folder] = {name.rpartition(".")[2]: importlib.import_module(name) for name in MODULES}
        except ImportError as exc:
            raise CodecError(
                f"hific: cannot import HiFiC from {folder}: {exc} (its code needs autograd, scipy and tqdm)"
            ) from None
    return _IMPORTED[folder]


@contextlib.contextmanager
def quiet():
    """HiFiC prints sizes and tqdm progress bars while it builds tables and codes."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def proxy_quantizer(proxy: str, generator: torch.Generator | None):
    """HiFiC rounds as ``floor(v + 0.5)``; ``ste`` does that with an identity gradient."""
    check_proxy(proxy)
    if proxy == "noise":
        return lambda v: uniform_noise(v, generator)
    return lambda v: v + (torch.floor(v + 0.5) - v).detach()


class HiFiCCodec(Codec):
    def __init__(self, modules: dict, encoder, generator, hyperprior, info: CodecInfo, device):
        super().__init__(info, device)
        self.modules = modules
        self.encoder, self.generator, self.hyperprior = (
            m.to(self.device).eval() for m in (encoder, generator, hyperprior)
        )
        for part in (self.encoder, self.generator, self.hyperprior):
            for p in part.parameters():
                p.requires_grad_(False)
        # its encoder downsamples 2^4, its hyper-analysis 2^2 more: no padding of its own needed
        self.multiple = 2 ** (encoder.n_downsampling_layers + hyperprior.analysis_net.n_downsampling_layers)

    def identity(self) -> dict:
        return {
            **super().identity(),
            "hific_code": public_trees.code_digest(self.info.details["root"], CODE_FILES),
            **{k: self.info.details[k] for k in ("latent_channels", "n_residual_blocks")},
        }

    def _forward_padded(self, x, proxy, generator):
        h, w = x.shape[-2:]
        hp, q = self.hyperprior, proxy_quantizer(proxy, generator)
        y = self.encoder(pad_to_min_size(x))
        z_hat = q(hp.analysis_net(y))
        mean = hp.synthesis_mu(z_hat)
        scale = self.modules["maths"].LowerBoundToward.apply(hp.synthesis_std(z_hat), hp.scale_lower_bound)
        y_hat = q(y - mean) + mean
        likelihoods = (hp.latent_likelihood(y_hat, mean=mean, scale=scale), hp.hyperlatent_likelihood(z_hat))
        bits = sum((-torch.log2(p)).flatten(1).sum(dim=1) for p in likelihoods)
        return self.generator(y_hat)[..., :h, :w], bits

    def _encode_padded(self, x):
        """One stream per image: HiFiC's compressed file (its ``save_compressed_format`` layout:
        shapes, separator, the two messages with their lengths), written to memory."""
        padded = pad_to_min_size(x)
        streams = []
        for i in range(x.shape[0]):
            with quiet():
                out = self.hyperprior.compress_forward(self.encoder(padded[i : i + 1]), tuple(padded.shape[-2:]))
            streams.append(self.file_bytes(out))
        return streams

    @torch.no_grad()
    def _decode_padded(self, stream):
        """HiFiC's file read back by its own readers, each declared shape checked first; the image
        is that of the file's size (at least :data:`MIN_SIZE`; the base class crops it)."""
        out = self.read_file(stream)
        with quiet():
            y_hat = self.hyperprior.decompress_forward(out, device=self.device)
        return self.generator(y_hat)[0].clamp(0, 1)

    def file_bytes(self, out) -> bytes:
        """HiFiC's compressed file for ``out``, laid out by its own writers in memory."""
        cu = self.modules["compression_utils"]
        buf = io.BytesIO()
        for shape in (
            out.hyperlatent_spatial_shape,
            out.spatial_shape,
            out.hyper_coding_shape,
            out.latent_coding_shape,
            [out.batch_shape],
        ):
            cu.write_shapes(shape, buf)
        buf.write(cu._MAGIC_VALUE_SEP)
        for message in (out.hyperlatents_encoded, out.latents_encoded):
            cu.write_num_bytes_encoded(len(message) * 4, buf)
            cu.message_to_bytes(buf, message)
            buf.write(cu._MAGIC_VALUE_SEP)
        return buf.getvalue()

    def read_file(self, stream: bytes):
        """A ``CompressionOutput`` from HiFiC's file layout (its ``load_compressed_format`` on bytes),
        with what the decoder would allocate bounded: one image of at most ``max_pixels``, hyper
        latents of that size over the codec's stride, coding shapes of at most 2**20 symbols."""
        cu = self.modules["compression_utils"]
        f = io.BytesIO(stream)

        def shapes(n):
            if len(stream) - f.tell() < 2 * n:
                raise CodecError(f"codec {self.label}: the stream ends inside its shapes")
            return cu.read_shapes(f, n)

        hyper, spatial, hyper_coding, latent_coding, batch = shapes(2), shapes(2), shapes(3), shapes(3), shapes(1)
        h, w = spatial
        if h < 1 or w < 1 or h * w > self.max_pixels or batch != (1,):
            raise CodecError(
                f"codec {self.label}: declared {batch[0]} image(s) of {h}x{w}: want one within 1..{self.max_pixels} pixels"
            )
        if tuple(hyper) != (-(-h // self.multiple), -(-w // self.multiple)):
            raise CodecError(f"codec {self.label}: declared hyper latents of {tuple(hyper)} for an image of {h}x{w}")
        for coding in (hyper_coding, latent_coding):
            if min(coding) < 1 or coding[0] * coding[1] * coding[2] > 1 << 20:
                raise CodecError(f"codec {self.label}: declared coding shape {tuple(coding)}")
        messages = []
        for _ in range(2):
            if f.read(4) != cu._MAGIC_VALUE_SEP or len(stream) - f.tell() < 4:
                raise CodecError(f"codec {self.label}: a separator or a length is missing")
            n = cu.read_num_bytes_encoded(f)
            if n % 4 or n > len(stream) - f.tell():
                raise CodecError(
                    f"codec {self.label}: declared a message of {n} bytes; {len(stream) - f.tell()} follow"
                )
            messages.append(cu.message_from_bytes(f, n))
        if f.read() != cu._MAGIC_VALUE_SEP:
            raise CodecError(f"codec {self.label}: the stream does not end with its separator")
        return cu.CompressionOutput(
            hyperlatents_encoded=messages[0],
            latents_encoded=messages[1],
            hyperlatent_spatial_shape=tuple(hyper),
            spatial_shape=tuple(spatial),
            hyper_coding_shape=tuple(hyper_coding),
            latent_coding_shape=tuple(latent_coding),
            batch_shape=1,
        )


def read_hific_checkpoint(path: str, what: str) -> tuple[dict, dict]:
    """(model_state_dict, recorded args) of a HiFiC checkpoint, read with ``weights_only=True``."""
    obj = read_checkpoint(path, what)
    state = obj.get("model_state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CodecError(f"{what}: {path} holds no model_state_dict of tensors")
    args = obj.get("args") if isinstance(obj.get("args"), dict) else {}
    return state, args


def load_hific(
    weights,
    quality,
    device,
    label,
    root,
    latent_channels=220,
    n_residual_blocks=9,
    channel_norm=True,
    likelihood_type="gaussian",
):
    """The codec a suite's ``model = "hific"`` table names (see :mod:`pytest_nicrobust.codecs.kinds.hific.table`)."""
    what = f"{label}[{quality}]"
    if quality not in REGIMES:
        raise CodecError(f"{what}: quality {quality!r} is not one of HiFiC's regimes {', '.join(REGIMES)}")
    mods = import_hific(root)
    state = None
    if weights != "random":
        path = weights.replace("{quality}", str(quality))
        state, args = read_hific_checkpoint(path, what)
        if args.get("use_latent_mixture_model") or args.get("normalize_input_image"):
            raise CodecError(
                f"{what}: {path} was trained with the latent mixture model or [-1, 1] inputs; "
                "the adapter wires HiFiC's mean-scale hyperprior on [0, 1] images"
            )
        latent_channels = int(args.get("latent_channels", latent_channels))
        n_residual_blocks = int(args.get("n_residual_blocks", n_residual_blocks))
        channel_norm = bool(args.get("use_channel_norm", channel_norm))
        likelihood_type = str(args.get("likelihood_type", likelihood_type))
    with torch.random.fork_rng(devices=[]), quiet():
        torch.manual_seed(0)  # the same random codec in every worker
        encoder = mods["encoder"].Encoder((3, 256, 256), 1, C=latent_channels, channel_norm=channel_norm)
        generator = mods["generator"].Generator(
            (3, 256, 256),
            1,
            C=latent_channels,
            n_residual_blocks=n_residual_blocks,
            channel_norm=channel_norm,
            sample_noise=False,
        )
        hyperprior = mods["hyperprior"].Hyperprior(
            bottleneck_capacity=latent_channels, likelihood_type=likelihood_type, entropy_code=True
        )
    details = {"root": root, "latent_channels": latent_channels, "n_residual_blocks": n_residual_blocks}
    if state is not None:
        for prefix, part in (("Encoder.", encoder), ("Generator.", generator), ("Hyperprior.", hyperprior)):
            sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            missing, unexpected = part.load_state_dict(sub, strict=False)
            # the coding tables are rebuilt from the densities; everything else must be in the file
            missing = [k for k in missing if not k.startswith(("prior_entropy_model.", "hyperprior_entropy_model."))]
            if missing or unexpected or not sub:
                raise CodecError(
                    f"{what}: {path} does not fit HiFiC's {prefix[:-1]} (C={latent_channels}): "
                    f"missing {missing[:3]}, unexpected {unexpected[:3]}"
                )
        details.update(file=path, sha256=sha256_of(path))
    with quiet():
        hyperprior.hyperprior_entropy_model.build_tables()
    info = CodecInfo(
        label=label,
        architecture="hific",
        quality=quality,
        weights=weights,
        random_init=weights == "random",
        details=details,
    )
    return HiFiCCodec(mods, encoder, generator, hyperprior, info, device)


def load(model, weights, quality, device, label, options, search=()):
    """The codec-kind hook's loader (:class:`~pytest_nicrobust.codecs.registry.CodecKind`)."""
    return load_hific(weights, quality, device, label, **options)
