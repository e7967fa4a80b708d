"""JPEG AI as a :class:`~pytest_nicrobust.codecs.base.Codec`: the load half of the codec kind ``jpegai``.

One codec is one tree (either line: DIS or IS), one profile (the SOP, BOP or HOP decoder, resolved
by its id, table.py) and one base model (beta). It holds the tree's encoder and decoder, built once
in a private namespace (isolation.py):

* :meth:`_forward_padded`: the encoder's own modules with gradients (engine.py), bits counted
  with its coder's tables (rate.py), a gradient through the integer hyperprior unless the suite
  says ``hyper_gradient = false`` (hyperprior.py); images one at a time, on the tree's device:
  the CPU, or with ``gpu = true`` the test's device when that is a GPU (the tree's own CUDA path;
  inputs are moved there and results back to the codec's device);
* the stream API (:meth:`_encode_padded`, :meth:`_decode_padded`): its encoder writes the real
  bitstream, its decoder decodes it, in the tree's guarded call; bytes are the stream's size.
  :meth:`encode_bytes` and :meth:`decode_bytes` are the two halves on a batch;
* :meth:`identity`: the tree's code and configuration hash, version and commit, the profile (its
  id and file), the beta, every weights file (and whether they are the official ones, weights.py)
  and the native extensions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref

import torch

from .... import CodecError
from ....files import sha256_of
from ...base import Codec, CodecInfo
from ...loading import cache_folder
from . import cache
from . import table as tree_files
from .table import MODEL, Profile, TreeError, parse_quality, resolve_profile, weight_files
from .weights import pointer_problem, weights_check


class JpegAICodec(Codec):
    """The JPEG AI reference software at one operation point (see the module docstring)."""

    multiple = 64

    def __init__(
        self,
        info: CodecInfo,
        device,
        root: str,
        profile: Profile,
        beta: float,
        models: str | None,
        seed: int = 0,
        hyper_gradient: bool = True,
        gpu: bool = False,
    ):
        super().__init__(info, device)
        # where the tree runs: the test's device if it is a GPU and the suite asks for it, else the CPU
        self.tree_device = self.device if gpu and self.device.type == "cuda" else torch.device("cpu")
        info.details["tree_device"] = str(self.tree_device)
        from .engine import Engine, calibrate
        from .isolation import TreeNamespace
        from .rate import residual_cost_table

        self.root, self.profile, self.beta, self.seed = root, profile, beta, seed
        self.hyper_gradient = hyper_gradient
        self.workdir = tempfile.mkdtemp(prefix="nicrobust-jpegai-")
        weakref.finalize(self, shutil.rmtree, self.workdir, True)
        self.tree = TreeNamespace(root, self.workdir)
        label = info.label
        with self.tree.active("building the codec"):
            try:
                store, listed = cache_folder(), None
                if models is None and store:  # calibrated random weights another build kept (cache.py)
                    store = os.path.join(store, cache.FOLDER, cache.key(root, profile, beta, seed))
                    listed = cache.kept(store)
                    models = store if listed else None
                    if listed:
                        info.details["weights_cache"] = f"loaded from {store}"
                if models is None:  # seeded random weights, saved in the tree's layout, loaded back
                    self.encoder = Engine(
                        self.tree, profile, beta, None, label, True, seed, hyper_gradient, self.tree_device
                    )
                    calibrate(self.encoder, seed=seed)
                    models = os.path.join(self.workdir, "random-weights")
                    self.encoder.save(models)
                    if store:
                        with contextlib.suppress(OSError):  # a cache folder we cannot write: nothing kept
                            models = cache.keep(models, store)
                            info.details["weights_cache"] = f"made and kept in {store}"
                    self.encoder.load(models)
                else:
                    self.encoder = Engine(
                        self.tree, profile, beta, models, label, True, seed, hyper_gradient, self.tree_device
                    )
                self.decoder = Engine(self.tree, profile, beta, models, label, False, seed, device=self.tree_device)
                self.cost = residual_cost_table(self.tree)
            except CodecError:
                raise
            except ModuleNotFoundError as exc:
                raise CodecError(
                    f"{label}: the JPEG AI tree at {root} needs the Python package {exc.name!r}, which "
                    "this environment lacks (docs/jpegai.md lists what a tree needs)"
                ) from None
            except Exception as exc:
                raise CodecError(
                    f"{label}: the JPEG AI tree at {root} failed to build: {type(exc).__name__}: {str(exc)[:300]}"
                ) from None
        self.models = models
        self.weights_files = sorted(set(self.encoder.weights.loaded) | set(self.decoder.weights.loaded))
        relative = [os.path.relpath(p, models) for p in self.weights_files]
        # a kept folder's digests were checked just before loading (cache.kept)
        self.weights_sha256 = {
            r: listed[r] if listed and r in listed else sha256_of(os.path.join(models, r)) for r in relative
        }
        if not info.random_init:  # trained weights: the official ones, or which are not
            self.official = weights_check(models, list(self.weights_sha256), self.weights_sha256)
            info.details["weights_official"] = (
                self.official[0] if not self.official[1] else f"{self.official[0]}: {', '.join(self.official[1])}"
            )
        # exposed so that the conformance check sees the tree's modules (eval mode)
        self.encoder_model, self.decoder_model = self.encoder.ce, self.decoder.ce
        self.decoder_mismatches = 0

    def _call(self, what: str, fn):
        on_gpu = torch.cuda.device(self.tree_device) if self.tree_device.type == "cuda" else contextlib.nullcontext()
        with self.tree.active(what), on_gpu:
            try:
                return fn()
            except CodecError:
                raise
            except Exception as exc:
                raise CodecError(
                    f"{self.label}: the JPEG AI tree failed during {what}: {type(exc).__name__}: {str(exc)[:300]}"
                ) from None

    def _forward_padded(self, x, proxy, generator):
        if proxy not in ("noise", "ste"):
            raise ValueError(f"unknown quantization proxy {proxy!r}; choose from ('noise', 'ste')")
        recs, bits = [], []
        for i in range(x.shape[0]):
            xi = x[i : i + 1].to(self.tree_device, torch.float32)
            rec, b = self._call(
                "the differentiable pass", lambda: self.encoder.forward(xi, proxy, generator, self.cost)
            )
            recs.append(rec.to(x.device))
            bits.append(b.to(x.device))
        return torch.cat(recs), torch.stack(bits)

    def encode_bytes(self, x: torch.Tensor) -> tuple[list[bytes], torch.Tensor]:
        """(one bitstream per image, the encoder's reconstructions) of a padded batch."""
        out, recs = [], []
        for i in range(x.shape[0]):
            xi = x[i : i + 1].detach().to(self.tree_device, torch.float32)
            data, rec = self._call("encoding", lambda: self.encoder.encode(xi))
            out.append(data)
            recs.append(rec.cpu())
        return out, torch.cat(recs)

    def decode_bytes(self, streams: list[bytes]) -> torch.Tensor:
        return torch.cat([self._call("decoding", lambda: self.decoder.decode(s)).cpu() for s in streams])

    def _encode_padded(self, x):
        return self.encode_bytes(x)[0]

    def _decode_padded(self, stream):
        """Its decoder on one stream, in the tree's guarded call (exits and commands contained)."""
        return self.decode_bytes([stream])[0].to(self.device)

    def _roundtrip_padded(self, x):
        """The stream API's round trip, also counting the images its decoder does not reproduce
        as its encoder reconstructed them (``decoder_mismatches``)."""
        streams, encoder_side = self.encode_bytes(x)
        decoded = self.decode_bytes(streams)
        if not torch.equal(decoded, encoder_side):
            self.decoder_mismatches += 1
        return decoded.to(x.device), [len(s) for s in streams]

    def identity(self) -> dict:
        ext = tree_files.extension_paths(self.root)
        official = (
            {}
            if self.info.random_init
            else {"weights_official": self.official[0], "weights_not_official": self.official[1]}
        )
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "label": self.info.label,
            "quality": self.info.quality,
            "weights": self.info.weights,
            "adapter_sha256": cache.adapter_digest(),
            "tree_code_sha256": tree_files.code_digest(self.root),
            "tree_version": tree_files.version(self.root),
            "tree_commit": tree_files.git_commit(self.root),
            "decoder_profile_id": self.profile.decoder_id,
            "stream_profile_id": self.profile.stream_id,
            "profile_file": self.profile.path,
            "beta": self.beta,
            "hyper_gradient": self.hyper_gradient,  # the gradient differs, so the adversarial images do
            "tree_device": self.tree_device.type,  # a GPU's arithmetic differs from the CPU's in the last bits
            "seed": self.seed if self.info.random_init else None,
            "weights_sha256": self.weights_sha256,
            **official,
            "extensions_sha256": {name: sha256_of(p) for name, p in ext.items()},
        }


def load(model, weights, quality, device, label, options, search=()) -> JpegAICodec:
    """The codec-kind hook's load half (codecs/registry.py): build the codec a checked table names."""
    root, name = options.get("root"), options.get("profile", tree_files.DEFAULT_PROFILE)
    beta = parse_quality(quality)
    if root is None or beta is None:
        raise CodecError(
            f"{label}: a {MODEL} codec needs root, a profile and a quality b<beta>; "
            f"got root={root!r}, profile={name!r}, quality={quality!r}"
        )
    problem = tree_files.tree_problem(root)
    try:
        profile = resolve_profile(root, name) if problem is None else None
    except TreeError as exc:
        problem = str(exc)
    if problem or profile is None:
        raise CodecError(f"{label}: {problem}")
    random = weights == "random"
    if not random:
        missing = tree_files.missing_weights(weights, profile.decoder_id, beta)
        if missing:
            raise CodecError(f"{label}: missing weights file(s) in {weights}: {', '.join(missing)}")
        pointer = pointer_problem(weights, weight_files(profile.decoder_id, beta))
        if pointer:
            raise CodecError(f"{label}: {pointer}")
    seed = int(options.get("seed", 0))
    hyper_gradient = bool(options.get("hyper_gradient", True))
    gpu = bool(options.get("gpu", False))
    details = {
        "root": root,
        "tree_version": tree_files.version(root),
        "tree_line": tree_files.line(root),
        "tree_commit": tree_files.git_commit(root),
        "profile": name,
        "profile_file": profile.path,
        "decoder_profile_id": profile.decoder_id,
        "operation_point": profile.operation_point,
        "beta": beta,
        "hyper_gradient": hyper_gradient,
    }
    if profile.stream_id is not None:
        details["stream_profile_id"] = profile.stream_id
    if random:
        details["seed"] = seed
    else:
        details["weights_folder"] = weights
    info = CodecInfo(
        label=label,
        architecture=f"{MODEL}-{profile.operation_point.lower()}",
        quality=quality,
        weights=weights,
        random_init=random,
        details=details,
    )
    return JpegAICodec(info, device, root, profile, beta, None if random else weights, seed, hyper_gradient, gpu)
