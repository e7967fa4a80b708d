"""QRes-VAE (qres34m) from the user's duanzhiihao/lossy-vae tree as a
:class:`~pytest_nicrobust.codecs.base.Codec`.

Its latent blocks quantise through CompressAI's ``GaussianConditional``, so the attack's proxy is
CompressAI's (:func:`~pytest_nicrobust.codecs.quantization.quantization_proxy`). What the
adapter handles:

* **its forward asserts the input has no gradient** (``preprocess_input``) and computes training
  statistics: the differentiable pass runs its parts instead (its input scaling, ``encoder``,
  ``decoder``, ``out_net.mean``; the image is mapped back from [-1, 1] without its clamp, which
  would cut the gradient); bits = Σ of its per-latent ``kl`` (−ln p of each quantised latent) / ln 2;
* **real bytes**: its ``compress`` / ``decompress`` (CompressAI's rANS per latent block), one stream
  per image in the plugin's container (:mod:`...container`); the size is the coded strings of every
  block plus 4 bytes for the image height and width, what decoding needs besides them (its own
  ``compress_file`` pickles the object instead: a few dozen bytes more);
* its top-level package ``lvae`` is imported with any other ``lvae`` set aside and put back after.
"""

from __future__ import annotations

import math

import torch

from .... import CodecError
from ....files import sha256_of
from ... import container
from ...base import Codec, CodecInfo
from ...checkpoints import read_checkpoint
from ...imports import importing
from ...quantization import guard_coder, quantization_proxy
from .. import public_trees
from .table import LAMBDAS

SIZE_BYTES = 4  # image height and width, two uint16
CODE_FILES = (
    "lvae/models/qresvae/model.py",
    "lvae/models/qresvae/zoo.py",
    "lvae/models/common.py",
    "lvae/models/entropy_coding.py",
)
_IMPORTED: dict[str, object] = {}


def import_qres_zoo(folder: str):
    """lossy-vae's ``lvae.models.qresvae.zoo`` (its model builders), imported once per tree."""
    if folder not in _IMPORTED:
        import importlib

        try:
            with importing((folder,), tree=folder, names={"lvae"}):
                _IMPORTED[folder] = importlib.import_module("lvae.models.qresvae.zoo")
        except ImportError as exc:
            raise CodecError(
                f"qres-vae: cannot import lossy-vae from {folder}: {exc} (its code needs timm >= 0.8 and compressai)"
            ) from None
    return _IMPORTED[folder]


class QResVAECodec(Codec):
    def __init__(self, net, info: CodecInfo, device):
        super().__init__(info, device)
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.compress_mode(True)  # its update(): the scale tables of every latent block
        self.multiple = int(net.max_stride)

    def identity(self) -> dict:
        from importlib.metadata import version

        return {
            **super().identity(),
            "lvae_code": public_trees.code_digest(self.info.details["root"], CODE_FILES),
            "compressai": version("compressai"),
            "timm": version("timm"),
        }

    def _forward_padded(self, x, proxy, generator):
        net = self.net
        with quantization_proxy(net, proxy, generator):
            features = net.encoder((x + net.im_shift) * net.im_scale)
            feature, stats = net.decoder(features)
        bits = sum(s["kl"].flatten(1).sum(dim=1) for s in stats) / math.log(2)
        return net.out_net.mean(feature) * 0.5 + 0.5, bits

    def _encode_padded(self, x):
        """One stream per image: the strings of every latent block in the plugin's container, whose
        size fields stand for the 4 bytes of height and width (the top feature's shape follows from them)."""
        with guard_coder(self.net, self.label):
            coded = self.net.compress(x)
        blocks, top = coded[:-1], coded[-1]  # the last entry is the top feature's shape (N, C, h, w)
        size = (x.shape[-2], x.shape[-1])
        s = container.stride_log2(size, top[-2:])
        return [container.pack([[block[i]] for block in blocks], size, s) for i in range(x.shape[0])]

    @torch.no_grad()
    def _decode_padded(self, stream):
        found = container.unpack(stream, self.max_pixels, int(self.net.max_stride).bit_length() - 1)
        top = (1, int(self.net.decoder.bias.shape[1]), *found.shape())
        return self.net.decompress([*found.strings, top])[0]

    def _container_bytes(self, stream):
        return container.header_bytes(stream) - SIZE_BYTES  # bpp counts the strings and the image size


def load_qres_vae(weights, quality, device, label, root):
    """The codec a suite's ``model = "qres-vae"`` table names (see :mod:`pytest_nicrobust.codecs.kinds.qres_vae.table`)."""
    what = f"{label}[{quality}]"
    if quality not in LAMBDAS:
        raise CodecError(f"{what}: quality {quality!r} is not one of qres34m's lambdas {', '.join(map(str, LAMBDAS))}")
    zoo = import_qres_zoo(root)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same random codec in every worker
        net = zoo.qres34m(lmb=quality, pretrained=False)
    details = {"root": root, "lmb": quality}
    if weights != "random":
        path = weights.replace("{quality}", str(quality))
        obj = read_checkpoint(path, what)
        state = obj.get("model", obj) if isinstance(obj, dict) else None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CodecError(f"{what}: {path} holds no 'model' state dict of tensors")
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise CodecError(f"{what}: {path} does not fit qres34m: {' '.join(str(exc).split())[:300]}") from None
        details.update(file=path, sha256=sha256_of(path))
    info = CodecInfo(
        label=label,
        architecture="qres-vae:qres34m",
        quality=quality,
        weights=weights,
        random_init=weights == "random",
        details=details,
    )
    return QResVAECodec(net, info, device)


def load(model, weights, quality, device, label, options, search=()):
    """The codec-kind hook's loader (:class:`~pytest_nicrobust.codecs.registry.CodecKind`)."""
    return load_qres_vae(weights, quality, device, label, **options)
