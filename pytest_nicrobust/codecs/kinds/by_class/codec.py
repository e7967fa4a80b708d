"""Codecs named by class: import the model's code, build it, load its weights, wrap it as a Codec.

The table was checked by :mod:`.table` at collection; here (at run time, torch) the class is
imported from the table's ``path``, the suite's folder and the rootdir (on ``sys.path`` only while it
imports and builds; the tree's top-level names kept apart from other codecs', see
:mod:`pytest_nicrobust.codecs.imports`), called with ``options`` under a fixed
seed (the run seed and the codec's label), checked for CompressAI's interface, given its weights, and wrapped as :class:`ClassCodec`:
the differentiable pass and quantisation proxy of
:class:`~pytest_nicrobust.codecs.builtin.compressai_models.CompressAICodec`, plus what research code needs:

* round trips one image at a time (LIC-TCM and ELIC code a whole batch as one stream and decode
  a batch of one), through the stream API: an image's strings and latent shape in the plugin's
  container (:mod:`...container`); its bytes are those of every string ``compress()`` returns for it;
* what ``forward``, ``compress`` and ``decompress`` return is checked, with one clear line, and
  the decoded image is clamped to [0, 1] (not every research decoder clamps);
* ``torch.cuda.synchronize()`` is a no-op while a model codes on a CPU without CUDA (ELIC calls
  it in ``decompress``), and cuDNN flags a model sets while coding are put back;
* padding to a multiple and to a smallest size from the table (``multiple``, ``min_size``);
* the cache identity pins the model's own source files and its constructor options.

Every problem of the table raises a :class:`~pytest_nicrobust.CodecError` of one line naming the
codec and the table key (``class``, ``options``, ``weights``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys

import torch
import torch.nn.functional as F

from .... import CodecError
from ....files import sha256_of
from ... import container
from ...base import CodecInfo
from ...builtin.compressai_models import CompressAICodec
from ...checkpoints import float32, load_state_dict_file, strip_prefix
from ...imports import Refused, import_target, importing, roots, top_level_names, within
from ...quantization import guard_coder, quantization_proxy
from ...registry import TableError

REQUIRED_METHODS = ("forward", "compress", "decompress", "update")

# ---------------------------------------------------------------------------
# Import


def resolve_class(target: str, folders: tuple[str, ...], tree: str | None):
    """The class ``module:Class`` names, from the roots ``folders`` (on ``sys.path`` as :func:`load`
    sets it up) under the trust model's rule (:mod:`pytest_nicrobust.codecs.imports`), checked to be
    a class of ``torch.nn.Module`` before it is called; :class:`TableError` on ``class`` otherwise."""
    module_name = target.partition(":")[0]
    try:
        obj = import_target(target, folders)
    except Refused as exc:
        raise TableError("class", str(exc)) from None
    except Exception as exc:  # ImportError, or any error inside the imported code
        where = f" from {tree}" if tree else ""
        text = (str(exc).strip().splitlines() or [""])[0][:300]
        raise TableError("class", f"cannot import {module_name!r}{where}: {type(exc).__name__}: {text}") from None
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if tree and file and module_name.partition(".")[0] in top_level_names(tree) and not within(file, tree):
        raise TableError("class", f"{module_name!r} resolves to {file} (already imported, or installed), not to {tree}")
    if not (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)):
        what = "a class" if inspect.isclass(obj) else f"a {type(obj).__name__}"
        raise TableError(
            "class",
            f"{target} is {what}, not a class of torch.nn.Module: class = names the model's class (a model "
            "built by a function: subclass the model and build it in __init__); refused before calling it",
        )
    return obj


# ---------------------------------------------------------------------------
# Construction and weights


def _kwargs(options: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items())


def construct(factory, options: dict, target: str):
    """``factory(**options)``, under the seed :func:`pytest_nicrobust.codecs.loading.load_codec` sets
    from the run seed and the codec's label (random weights are the same in every worker)."""
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise TableError("options", f"{target} does not take them: {exc}") from None
    except ValueError:  # no signature to read (a builtin): just call it
        pass
    try:
        model = factory(**options)
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0][:300]
        raise TableError(
            "options" if options else "class", f"{target}({_kwargs(options)}) raised {type(exc).__name__}: {text}"
        ) from None
    check_interface(model, target)
    return model


def check_interface(model, target: str) -> None:
    """Refuse what cannot work as a CompressAI-style model, naming what is missing."""
    from compressai.entropy_models import EntropyModel

    if not isinstance(model, torch.nn.Module):
        raise TableError("class", f"{target} returned {type(model).__name__}, not a torch.nn.Module")
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(model, m, None))]
    if missing:
        raise TableError(
            "class",
            f"{type(model).__name__} has no {', '.join(missing)}: a codec named by class needs "
            "CompressAI's forward, compress, decompress and update(force=True)",
        )
    if not any(isinstance(m, EntropyModel) for m in model.modules()):
        raise TableError(
            "class",
            f"{type(model).__name__} holds no CompressAI entropy module (EntropyBottleneck, "
            "GaussianConditional, ...), so no quantisation proxy can act on it; write a Codec "
            "subclass instead (README, 'Bring your own codec')",
        )


def load_weights(model, file: str, label: str) -> None:
    try:
        state = load_state_dict_file(file, label)  # torch.load(weights_only=True); "state_dict" unwrapped
    except CodecError as exc:
        raise TableError("weights", str(exc).removeprefix(f"{label}: ")) from None
    try:
        model.load_state_dict(float32(strip_prefix(state)))
    except Exception as exc:
        text = re.sub(r"\s+", " ", str(exc).strip())[:300]
        raise TableError(
            "weights", f"{file} does not fit {type(model).__name__}: {type(exc).__name__}: {text}"
        ) from None


# ---------------------------------------------------------------------------
# The codec


def count_bytes(strings) -> int:
    """Bytes of ``compress()``'s strings: bytes, or lists / tuples of them, nested."""
    if isinstance(strings, (bytes, bytearray)):
        return len(strings)
    if isinstance(strings, (list, tuple)):
        return sum(count_bytes(s) for s in strings)
    raise CodecError(f"compress() returned strings holding {type(strings).__name__}, not bytes")


@contextlib.contextmanager
def cpu_guards(device: torch.device):
    """``torch.cuda.synchronize`` a no-op on a CPU without CUDA; cuDNN flags put back afterwards."""
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    patch = device.type == "cpu" and not torch.cuda.is_available()
    original = torch.cuda.synchronize
    if patch:
        torch.cuda.synchronize = lambda device=None: None
    try:
        yield
    finally:
        if patch:
            torch.cuda.synchronize = original
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags


UNITS_RANGE = (
    -2.0,
    3.0,
)  # decoded values beyond this are not an image in [0, 1] (0-255?): left for the base class to refuse


def _as_image(x_hat):
    """A decoder's output is an image: clamped to [0, 1] as CompressAI's models and LIC-TCM do inside
    ``decompress`` (ELIC does not; with random weights it decodes values down to -0.83). Values in
    other units are left as they are, for the base class to refuse."""
    lo, hi = float(x_hat.min()), float(x_hat.max())
    return x_hat.clamp(0, 1) if UNITS_RANGE[0] <= lo and hi <= UNITS_RANGE[1] else x_hat


def _describe(obj) -> str:
    return f"a dict with keys {sorted(map(str, obj))}" if isinstance(obj, dict) else type(obj).__name__


class ClassCodec(CompressAICodec):
    """A CompressAI-style model (built, weights loaded) with its padding."""

    def __init__(self, model, info: CodecInfo, device="cpu", multiple: int = 64, min_size: int = 0, sources=()):
        self.multiple = multiple
        self.min_size = min_size
        self._sources = tuple(sources)
        with cpu_guards(torch.device(device)):
            super().__init__(model, info, device)  # non-finite weights refused, update(force=True), eval, frozen

    def identity(self) -> dict:
        return {
            **super().identity(),
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "options": self.info.details.get("options", {}),
            "multiple": self.multiple,
            "min_size": self.min_size,
            "model_code_sha256": {os.path.basename(s): sha256_of(s) for s in self._sources if os.path.isfile(s)},
        }

    def _grown(self, x):
        """``x`` padded (replicate) to at least ``min_size``: window attention (LIC-TCM) needs
        latents larger than its window."""
        h, w = x.shape[-2:]
        ph, pw = max(0, self.min_size - h), max(0, self.min_size - w)
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def _forward_padded(self, x, proxy, generator):
        h, w = x.shape[-2:]
        with quantization_proxy(self.model, proxy, generator):
            out = self.model(self._grown(x))
        if (
            not isinstance(out, dict)
            or not isinstance(out.get("x_hat"), torch.Tensor)
            or not isinstance(out.get("likelihoods"), dict)
            or not out["likelihoods"]
        ):
            raise CodecError(
                f"codec {self.label}: {type(self.model).__name__}.forward() must return a dict with "
                f"'x_hat' and 'likelihoods' (a dict of tensors), got {_describe(out)}"
            )
        bits = sum((-torch.log2(lk)).flatten(1).sum(dim=1) for lk in out["likelihoods"].values())
        return out["x_hat"][..., :h, :w], bits

    def _encode_padded(self, x):
        """One image at a time (LIC-TCM and ELIC code a batch as one stream): its strings and latent
        shape in the plugin's container, with the padded size (the grown size follows from it)."""
        grown = self._grown(x)
        size = (x.shape[-2], x.shape[-1])
        coded = self._coded_size(*size)
        streams = []
        with cpu_guards(self.device):
            for i in range(x.shape[0]):
                with guard_coder(self.model, self.label):
                    enc = self.model.compress(grown[i : i + 1])
                if not isinstance(enc, dict) or "strings" not in enc or "shape" not in enc:
                    raise CodecError(
                        f"codec {self.label}: {type(self.model).__name__}.compress() must return a dict with "
                        f"'strings' and 'shape', got {_describe(enc)}"
                    )
                count_bytes(enc["strings"])  # bytes, in lists
                try:
                    streams.append(container.pack(enc["strings"], size, container.stride_log2(coded, enc["shape"])))
                except container.ContainerError as exc:
                    raise CodecError(f"codec {self.label}: {exc}") from None
        return streams

    def _coded_size(self, h: int, w: int) -> tuple[int, int]:
        return max(h, self.min_size), max(w, self.min_size)

    @torch.no_grad()
    def _decode_padded(self, stream):
        with cpu_guards(self.device):
            found = container.unpack(stream, self.max_pixels, self.latent_stride())
        h, w = found.height, found.width
        coded = self._coded_size(h, w)
        name = type(self.model).__name__
        with cpu_guards(self.device):
            dec = self.model.decompress(found.strings, found.shape(coded))
        if not isinstance(dec, dict) or not isinstance(dec.get("x_hat"), torch.Tensor):
            raise CodecError(
                f"codec {self.label}: {name}.decompress() must return a dict with 'x_hat', got {_describe(dec)}"
            )
        if tuple(dec["x_hat"].shape) != (1, 3, *coded):
            raise CodecError(
                f"codec {self.label}: {name}.decompress() gave x_hat of shape "
                f"{tuple(dec['x_hat'].shape)} for an input of {(1, 3, *coded)}"
            )
        return _as_image(dec["x_hat"])[0, :, :h, :w].to(self.device)


def _source_files(*objs) -> list[str]:
    out = []
    for obj in objs:
        try:
            src = inspect.getsourcefile(obj if inspect.isclass(obj) or inspect.isfunction(obj) else type(obj))
        except TypeError:
            src = None
        if src and src not in out:
            out.append(src)
    return out


def load(model, weights, quality, device="cpu", label=None, options=None, search=()):
    """The codec of a class table checked by :func:`.table.check_table` (its ``options``), imported
    from the table's ``path``, the suite's folder and ``search`` (the rootdir), as ``model =`` is."""
    spec = dict(options or {})
    target = spec["class"]
    label = label or target.rpartition(":")[2]
    tree = spec.get("path")
    try:
        folders = roots(tree, spec.get("home"), tuple(search))
        with importing(folders, tree=tree):
            factory = resolve_class(target, folders, tree)
            net = construct(factory, dict(spec.get("options", {})), target)
            sources = _source_files(factory, net)  # while the tree's modules are registered
        details = {"class": target, "options": spec.get("options", {}), "path": spec.get("path")}
        if weights != "random":
            file = weights.replace("{quality}", str(quality))
            load_weights(net, file, label)
            details.update(file=file, sha256=sha256_of(file))
    except TableError as exc:
        raise CodecError(f"codec {label} (class {target}): {exc.key}: {exc}") from None
    info = CodecInfo(
        label=label,
        architecture=target,
        quality=quality,
        weights=weights,
        random_init=weights == "random",
        details=details,
    )
    return ClassCodec(net, info, device, spec.get("multiple", 64), spec.get("min_size", 0), sources)
