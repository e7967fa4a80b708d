"""EVC from the user's microsoft/DCVC tree as a :class:`~pytest_nicrobust.codecs.base.Codec`.

What the adapter handles, without changing any file of the tree:

* **its package is named ``src``** (relative imports only): imported under a private alias, so
  another tree's ``src`` (JPEG AI, HiFiC) can live in the same process;
* **rounding without gradient**: EVC quantises with ``model.quant`` (``torch.round``) in eval; for
  a call the instance attribute is replaced by the attack's proxy (uniform noise from the seeded
  generator, or straight-through rounding) and removed after;
* **CUDA-only calls**: ``decompress`` calls ``torch.cuda.synchronize()``, which raises on a machine
  without a GPU; on a non-CUDA device EVC's module sees, for the call, a ``torch`` whose
  ``cuda.synchronize`` does nothing (its module global is restored after);
* **its threaded coder hangs**: ``update()`` builds ``RansEncoder(ec_thread, 2)``, two stream parts
  each coded by a worker thread that is started before the mutex and condition variables it waits
  on are constructed (member order in its rans.h); here it hung in ``get_encoded_stream`` and in its
  destructor. The adapter builds the same tables with a one-part coder (``RansEncoder(False, 1)``,
  the same rANS in the calling thread; one stream part, two header bytes fewer);
* **real size**: one stream per image laid out as EVC's ``encode_i`` writes its file: a 14-byte
  header (height and width of the padded image, q index, length) and its bit stream, all counted;
  the decoder checks the header (the size within ``max_pixels``, the length) before EVC decodes,
  with the q index of the header, as EVC's ``decode_i`` does; the q_scale is rounded to 1/100 as
  that header stores it, for the forward pass too, so both paths use the same step.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import struct
import sys
import types

import torch

from .... import CodecError
from ....files import sha256_of
from ...base import Codec, CodecInfo
from ...checkpoints import read_checkpoint
from ...quantization import RoundSTE, check_proxy, uniform_noise
from .. import public_trees
from .table import ANCHORS, ARCHS, Q_SCALE_RANGE, quality_problem

HEADER = struct.Struct(">2IHI")  # h, w, q_index, length: what its encode_i writes before the bit stream
CODE_FILES = tuple(
    f"src/models/{f}.py" for f in ("__init__", "common_model", "entropy_models", "hyperprior", "image_model", "layers")
) + ("src/utils/stream_helper.py",)


def import_evc(folder: str):
    """EVC's ``src.models`` package and its ``image_model`` module, imported under a private alias."""
    alias = "_nicrobust_evc_" + hashlib.sha1(folder.encode()).hexdigest()[:12]
    package = os.path.join(folder, "src")
    try:
        models = public_trees.import_under_alias(alias, package, "models")
        image_model = importlib.import_module(f"{alias}.models.image_model")
        rans = importlib.import_module(f"{alias}.models.MLCodec_rans")
    except ImportError as exc:
        raise CodecError(f"evc: cannot import EVC from {folder}: {exc} (is its native coder built?)") from None
    return models, image_model, rans


class _TorchWithoutCudaSync(types.ModuleType):
    """``torch`` as one of EVC's modules sees it on a CPU device: ``cuda.synchronize()`` is a no-op,
    every other attribute is torch's own."""

    def __init__(self, real):
        super().__init__("torch")
        self._real = real
        self.cuda = types.SimpleNamespace(synchronize=lambda *args, **kwargs: None)

    def __getattr__(self, name):
        return getattr(self._real, name)


@contextlib.contextmanager
def cuda_calls_guarded(module, device: torch.device):
    """For the call, ``module.torch`` skips ``torch.cuda.synchronize()`` unless ``device`` is CUDA."""
    if device.type == "cuda":
        yield
        return
    original = module.torch
    module.torch = _TorchWithoutCudaSync(original)
    try:
        yield
    finally:
        module.torch = original


def proxy_quantizer(proxy: str, generator: torch.Generator | None):
    """EVC rounds with ``torch.round``: ``ste`` rounds exactly with an identity gradient."""
    check_proxy(proxy)
    if proxy == "noise":
        return lambda x: uniform_noise(x, generator)
    return RoundSTE.apply


@contextlib.contextmanager
def quantization_proxy(net, proxy: str, generator):
    """EVC's ``net.quant`` replaced by the proxy for the call (an instance attribute), removed after."""
    net.quant = proxy_quantizer(proxy, generator)
    try:
        yield
    finally:
        del net.quant


def update_with_one_part_coder(net, rans) -> None:
    """What EVC's ``update(force=True)`` does, with a one-part rANS coder instead of its threaded
    two-part one (see the module docstring)."""
    entropy_models = sys.modules[type(net.bit_estimator_z).__module__]
    coder = object.__new__(entropy_models.EntropyCoder)
    coder.encoder = rans.RansEncoder(False, 1)
    coder.decoder = rans.RansDecoder(1)
    net.entropy_coder = coder
    net.gaussian_encoder.update(force=True, entropy_coder=coder)
    net.bit_estimator_z.update(force=True, entropy_coder=coder)


def q_scale_of(quality, anchors) -> float:
    """A rate index picks the checkpoint's q_scale anchor; ``"s<q>"`` gives it. Rounded to 1/100 as
    EVC's stream header stores it."""
    problem = quality_problem(quality)
    if problem:
        raise CodecError(f"evc: quality {quality!r}: {problem}")
    q = float(anchors[quality]) if isinstance(quality, int) else float(quality[1:])
    lo, hi = Q_SCALE_RANGE
    return round(min(max(q, lo), hi) * 100) / 100


class EVCCodec(Codec):
    multiple = 64  # EVC pads to 64 (its get_padding_size)

    def __init__(self, net, image_model, rans, q_scale: float, info: CodecInfo, device):
        super().__init__(info, device)
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.image_model = image_model
        self.q_scale = q_scale
        update_with_one_part_coder(self.net, rans)

    def identity(self) -> dict:
        root = self.info.details["root"]
        native = public_trees.native_module(os.path.join(root, "src", "models"), "MLCodec_rans")
        return {
            **super().identity(),
            "arch": self.info.details["arch"],
            "q_scale": self.q_scale,
            "evc_code": public_trees.code_digest(root, CODE_FILES),
            "evc_native": sha256_of(native) if native else None,
        }

    def _forward_padded(self, x, proxy, generator):
        with quantization_proxy(self.net, proxy, generator):
            out = self.net(x, self.q_scale)
        return out["x_hat"], (out["bpp_y"] + out["bpp_z"]) * (x.shape[-2] * x.shape[-1])

    def _encode_padded(self, x):
        """One stream per image in the layout of EVC's own ``encode_i``: height, width, q index,
        length, then its bit stream (the padded size, which its decoder needs)."""
        h, w = x.shape[-2:]
        streams = []
        with cuda_calls_guarded(self.image_model, self.device):
            for i in range(x.shape[0]):  # EVC codes one image per stream
                bits = self.net.compress(x[i : i + 1], self.q_scale)["bit_stream"]
                streams.append(HEADER.pack(h, w, round(self.q_scale * 100), len(bits)) + bits)
        return streams

    @torch.no_grad()
    def _decode_padded(self, stream):
        if len(stream) < HEADER.size:
            raise CodecError(f"codec {self.label}: {len(stream)} bytes, shorter than EVC's header ({HEADER.size})")
        h, w, q_index, length = HEADER.unpack_from(stream)
        if h < 1 or w < 1 or h * w > self.max_pixels:
            raise CodecError(f"codec {self.label}: declared size {h}x{w}: not within 1..{self.max_pixels} pixels")
        if q_index < 1:
            raise CodecError(f"codec {self.label}: declared q index 0 (q_scale 0)")
        if length != len(stream) - HEADER.size:
            raise CodecError(
                f"codec {self.label}: declared {length} bytes of bit stream; {len(stream) - HEADER.size} follow"
            )
        with cuda_calls_guarded(self.image_model, self.device):
            return self.net.decompress(stream[HEADER.size :], h, w, q_index / 100)["x_hat"][0]


def read_state_dict(path: str, what: str) -> dict:
    """An EVC checkpoint (plain, ``state_dict`` or ``net``; ``module.`` prefixes dropped), tensors only."""
    obj = read_checkpoint(path, what)
    for key in ("state_dict", "net"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CodecError(f"{what}: {path} does not hold a state_dict of tensors")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_evc(weights, quality, device, label, root, arch="EVC_LL"):
    """The codec a suite's ``model = "evc"`` table names (see :mod:`pytest_nicrobust.codecs.kinds.evc.table`)."""
    what = f"{label}[{quality}]"
    if arch not in ARCHS:
        raise CodecError(f"{what}: arch {arch!r} is not one of {', '.join(ARCHS)}")
    models, image_model, rans = import_evc(root)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same random codec in every worker
        net = models.build_model(arch, anchor_num=ANCHORS)
    details = {"root": root, "arch": arch}
    if weights != "random":
        path = weights.replace("{quality}", str(quality))
        state = read_state_dict(path, what)
        try:  # torch's own strict load: EVC's override skips tensors that do not fit, silently
            torch.nn.Module.load_state_dict(net, state, strict=True)
        except RuntimeError as exc:
            first = " ".join(str(exc).split())[:300]
            raise CodecError(f"{what}: {path} does not fit EVC {arch}: {first}") from None
        details.update(file=path, sha256=sha256_of(path))
    q_scale = q_scale_of(quality, net.q_scale.detach().reshape(-1).tolist())
    details["q_scale"] = q_scale
    info = CodecInfo(
        label=label,
        architecture=f"evc:{arch}",
        quality=quality,
        weights=weights,
        random_init=weights == "random",
        details=details,
    )
    return EVCCodec(net, image_model, rans, q_scale, info, device)


def load(model, weights, quality, device, label, options, search=()):
    """The codec-kind hook's loader (:class:`~pytest_nicrobust.codecs.registry.CodecKind`)."""
    return load_evc(weights, quality, device, label, **options)
