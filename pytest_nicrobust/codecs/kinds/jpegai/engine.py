"""The JPEG AI reference software's encoder and decoder, built from a tree and driven in-process.

Everything here runs inside :meth:`TreeNamespace.active` (isolation.py). What it does with the
tree's own classes, and what it keeps off:

* **Build**: the tree's reconstruction encoder (``RecoEncoder``) or decoder (``RecoDecoder``) with
  the configuration ``cfg/tools_off.json`` + the profile's file (resolved by its decoder profile id,
  table.py) + an override file of
  ours in the private work folder that turns the bitrate matcher off (no search over betas, no
  beta-list file written, no cache by file name): the base model is exactly the named beta
  (``active_tool_idx``) with zero beta displacement.
* **Weights**: the tree's own loading path (``load_models_recursively``) with a stand-in for its
  downloader that hands out the named beta's files from the models folder and nothing else — it
  never runs dvc, never calls ``exit()``; files are first read with ``torch.load(weights_only=True)``.
* **Entropy tables**: its ANS library keeps the tables in memory instead of writing
  ``cache.pt`` next to its code.
* **Random weights**: the tree's own initialisation under a seed, then a few layers scaled on a
  synthetic image so that latents, hyper latents and scales are not zero (:func:`calibrate`, on
  one thread, so the weights do not depend on the caller's thread count), saved in the tree's file
  layout and loaded back through the same path as trained weights.
* **White box** (:meth:`Engine.differentiable`): the body of its ``CodingEngine.compress`` without
  its ``no_grad`` — colour conversion, analysis, hyper encoder, context model with its
  straight-through residual rounding (or uniform noise from the caller's generator), synthesis —
  returning the encoder-side reconstruction and the latents; with ``ste`` and no grad it equals
  ``compress``'s reconstruction exactly. The noise proxy reaches both models: the luma model's
  context model and the chroma model's own quantiser (it has no context model).
* **Device**: the CPU, or a CUDA device (the tree's own GPU path: every module's ``target_device``
  set to ``gpu``, the current CUDA device being the codec's), where the tree's own rule would read
  ``CUDA_VISIBLE_DEVICES``. The GPU path is unmeasured here.
* **Real stream** (:meth:`Engine.encode`, :meth:`Engine.decode`): its encoder writes the bitstream
  (a file in the private folder, read back as bytes), its decoder decodes it. The profile ids a
  stream's header carries (``decoder_profile_id``; ``stream_profile_id`` on the IS line) must be
  the suite's profile's, or decoding stops with a :class:`CodecError` naming both.
"""

from __future__ import annotations

import contextlib
import json
import os

import torch

from .... import CodecError
from . import hyperprior
from .table import BETAS, Profile, weight_files

_TABLES: dict = {}  # ANS tables by their parameters, shared by every tree in the process


def _tables_in_memory(mans) -> None:
    """Make the tree's ANS library build its tables in memory instead of reading/writing cache.pt."""
    cls = mans.ECLibMans

    def load_cache(self):
        key = (tuple(self.quant_params), tuple(self.quant_values), tuple(map(tuple, self.pdf_r)))
        if key not in _TABLES:
            self.init_quant_params()
            _TABLES[key] = (self.encode_transitions, self.decode_transitions, self.bounds, self.state_maps)
        self.encode_transitions, self.decode_transitions, self.bounds, self.state_maps = _TABLES[key]

    cls.load_cache = load_cache
    cls.store_cache = lambda self: None


class WeightsFolder:
    """Stands in for the tree's downloader: the named beta's files from one folder, nothing fetched."""

    def __init__(self, models: str | None, beta: float, label: str):
        self.models_dir = models
        self.suffix = f"_{beta:g}.pth"
        self.label = label
        self.loaded: list[str] = []

    def download_models(self, names):
        pass  # the tree would run dvc here

    def get_file_path(self, model_name: str, file_name: str):
        if self.models_dir is None or not file_name.endswith(self.suffix):
            return None  # another base model's file: that model stays as built (it is never used)
        path = os.path.join(self.models_dir, model_name, file_name)
        if not os.path.isfile(path):
            return None
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CodecError(
                f"{self.label}: cannot read weights file {path}: torch.load(weights_only=True) "
                f"refused it ({type(exc).__name__})"
            ) from None
        self.loaded.append(path)
        return path


def _plain_state_dict(module) -> dict:
    """A module's parameters and persistent buffers under the names its checkpoint files use:
    the tree's ModelWrapper adds ``inst.`` when loading, so that segment is left out below it."""
    out = {}

    def walk(mod, prefix):
        for k, p in mod._parameters.items():
            if p is not None:
                out[prefix + k] = p.detach().clone().cpu()
        for k, b in mod._buffers.items():
            if b is not None and k not in mod._non_persistent_buffers_set:
                out[prefix + k] = b.detach().clone().cpu()
        for k, child in mod._modules.items():
            if child is not None:
                walk(child, prefix if (hasattr(mod, "_inst_type") and k == "inst") else prefix + k + ".")

    walk(module, "")
    return out


class Engine:
    """One encoder or decoder of a tree, for one profile and one base model (beta)."""

    def __init__(
        self,
        tree,
        profile: Profile,
        beta: float,
        models: str | None,
        label: str,
        encoder: bool = True,
        seed: int | None = None,
        hyper_gradient: bool = True,
        device: torch.device | None = None,
    ):
        self.tree, self.profile, self.beta, self.label = tree, profile, beta, label
        self.hyper_gradient = hyper_gradient
        self.device = torch.device("cpu") if device is None else device  # a CUDA device: the tree's GPU path
        self.index = BETAS.index(beta)
        cfg = os.path.join(tree.root, "cfg")
        override = os.path.join(tree.workdir, "nicrobust-override.json")
        with open(override, "w") as f:  # in our private folder, never the tree
            json.dump(
                {
                    "target_device": "cpu",  # set for every module below (device_param)
                    "model": {
                        "bitrate_matcher": {
                            "enabled": 0,
                            "use_default": 1,
                            "regen_beta_list": 0,
                            "rewrite_beta_list_file": 0,
                            "bitrate_config_path": tree.workdir,
                        }
                    },
                },
                f,
            )
        stream = os.path.join(tree.workdir, "stream.bin")
        _tables_in_memory(tree.module("src.codec.entropy_coding.lib_wrappers.mans.ec_lib_mans"))
        coders = tree.module("src.codec.coders")
        if encoder:
            reco = tree.module("src.reco.coders.encoder")
            parser = reco.def_base_parser()
            coder = reco.RecoEncoder(parser, coders.def_encoder_parser_decorator(parser))
            args = [
                "input.png",
                stream,
                "--cfg",
                os.path.join(cfg, "tools_off.json"),
                os.path.join(tree.root, profile.path),
                override,
                "--bpp_idx",
                str(self.index),
            ]
        else:
            reco = tree.module("src.reco.coders.decoder")
            parser = reco.def_base_parser()
            coder = reco.RecoDecoder(parser, coders.def_decoder_parser_decorator(parser))
            args = [stream, os.path.join(tree.workdir, "decoded.png")]
        if seed is not None:
            torch.manual_seed(seed)  # the tree's own initialisation, seeded (inside the state guard)
        wanted = "gpu" if self.device.type == "cuda" else "cpu"
        recurrent = tree.module("src.codec").set_param_recurrent

        def device_param(kwargs, params):  # every module on our device (the tree's rule reads CUDA_VISIBLE_DEVICES)
            kwargs["device"] = wanted
            return recurrent(params, "target_device", wanted)

        coder.setup_device_param = device_param
        coder.init_common_codec(build_model=True, cmd_args=args)
        self.coder, self.ce = coder, coder.ce
        if encoder:
            self.check_profile("its configuration", "encoder")
        self.Image = tree.module("src.codec.common").Image
        self.tiling = tree.module("src.codec.common.tiling")
        self.weights = WeightsFolder(models, beta, label)
        if models is not None:
            self.load(models)
        self.multitool = self.ce.model.CCS_SGMM
        if encoder:
            self.multitool.active_tool_idx = self.index
            self.multitool._set_beta_displacement_log(0, "Y")
            self.multitool._set_beta_displacement_log(0, "UV")
        for p in self.ce.parameters():
            p.requires_grad_(False)

    def load(self, models: str) -> None:
        """Load the named beta's files from ``models`` through the tree's loading path (once)."""
        self.weights = WeightsFolder(models, self.beta, self.label)
        self.ce.load_models_recursively(self.weights)
        self.ce.eval()
        needed = {os.path.join(models, f) for f in weight_files(self.profile.decoder_id, self.beta)}
        if self.coder.is_encoder:
            missing = sorted(needed - set(self.weights.loaded))
        else:  # the decoder builds no analysis transform
            missing = sorted(p for p in needed - set(self.weights.loaded) if "/encoder_" not in p)
        if missing:
            raise CodecError(f"{self.label}: weights file(s) not loaded: {', '.join(missing)}")

    def check_profile(self, source: str, side: str) -> None:
        """The profile ids the tree holds (from ``source``: its configuration, or a stream's header) are the suite's."""
        want = self.profile
        got = (getattr(self.ce, "decoder_profile_id", None), getattr(self.ce, "stream_profile_id", None))
        wrong = got[0] != want.decoder_id or (want.stream_id is not None and got[1] not in (None, want.stream_id))
        if wrong:
            said = f"decoder_profile_id {got[0]}" + (f", stream_profile_id {got[1]}" if got[1] is not None else "")
            wanted = f"decoder_profile_id {want.decoder_id}" + (
                f", stream_profile_id {want.stream_id}" if want.stream_id is not None else ""
            )
            raise CodecError(
                f"{self.label}: the {side} got {said} from {source}, but profile {want.name!r} is {wanted} "
                f"({want.path} in {self.tree.root})"
            )

    def tool(self):
        return self.multitool.tools[self.index]

    def saved_files(self) -> list[tuple[object, str, str]]:
        """(module, models subfolder, file) of every module that loads one file of this beta."""
        out = []
        for m in self.ce.modules():
            if not all(hasattr(m, a) for a in ("get_ckpt_names", "get_model_name", "load_checkpoint")):
                continue
            name, files = m.get_model_name(), m.get_ckpt_names()
            if name and len(files) == 1 and files[0].endswith(f"_{self.beta:g}.pth"):
                out.append((m, name, files[0]))
        return out

    def save(self, models: str) -> None:
        """This beta's weights in the tree's file layout under ``models``."""
        for module, name, file in self.saved_files():
            os.makedirs(os.path.join(models, name), exist_ok=True)
            torch.save(_plain_state_dict(module), os.path.join(models, name, file))

    # ------------------------------------------------------------------ coding

    def _image(self, x: torch.Tensor):
        img = self.Image.create_from_tensor(x, [0.0, 1.0], 8, "rgb")
        img.input_file = "input.png"
        return img

    @staticmethod
    def _rgb(img) -> torch.Tensor:
        img.to_RGB_()
        img.convert_range_([0.0, 1.0])
        return torch.cat(img.get_components(), 1)

    def differentiable(self, x: torch.Tensor):
        """(reconstruction (1, 3, H, W) in [0, 1], decisions): its compress without no_grad."""
        ce = self.ce
        img = self._image(x)
        ce.img_height, ce.img_width = x.shape[-2:]
        ce.image_data_bits = 8
        ce.image_filepath = "input.png"
        ce.init_new_img_recursivly()
        ce.s_ver, ce.s_hor = img.get_chroma_subsampling()
        ce.c_ver = max(ce.c_ver, ce.s_ver) if ce.c_ver_value is None else ce.c_ver_value
        ce.c_hor = max(ce.c_hor, ce.s_hor) if ce.c_hor_value is None else ce.c_hor_value
        ce.res_changer.setup([ce.img_height, ce.img_width])
        coded = ce.colour_processing.pre_processing(ce.res_changer.forward_transform(img.clone()))
        coded.input_file = "input.png"
        rec, decisions = ce.compress_model(coded, return_latent=True)
        rec = ce.res_changer.backward_transform(rec)
        rec.to_format_(img.format)
        ce.post_filters.compress(rec.clone(), img.clone(), decisions=decisions)
        rec = ce.colour_processing.post_processing(ce.post_filters.decompress(rec, decisions=decisions))
        return self._rgb(rec), decisions

    @contextlib.contextmanager
    def proxy(self, proxy: str, generator):
        """Quantisation of the residual by ``proxy`` (and the hyperprior's twins with
        ``hyper_gradient``, hyperprior.py); yields {id(int tensor): (tensor, float twin)} of the
        integer tensors the encoder keeps (quantised residuals, the hyper latent)."""
        twins: dict = {}
        assign = self.tiling.assign_data

        def assign_keeping_float(dst, tile, data):
            if not dst.is_floating_point() and data.is_floating_point() and data.requires_grad:
                twin = twins.get(id(dst))
                base = twin[1] if twin else torch.zeros(dst.shape, dtype=data.dtype, device=dst.device)
                twins[id(dst)] = (dst, assign(base.clone(), tile, data))
            return assign(dst, tile, data)

        replaced: list = []
        if proxy == "noise" or self.hyper_gradient:
            utils = self.tree.module("src.codec.components.contexts.utils").ContextUtils
            for sub in (self.tool().model_y, self.tool().model_uv):
                cm = sub.common_modules
                state = hyperprior.TileState()
                if self.hyper_gradient:
                    replaced += [(owner, name, None) for owner, name in hyperprior.hooks(cm, twins, state, utils)]
                ctx = getattr(cm, "context", None)
                if ctx is not None:  # the luma model: its context model calls the quantiser per stage
                    replaced.append((ctx, "quantize_func", ctx.quantize_func))
                    ctx.quantize_func = _quantiser(cm, proxy, generator, ctx.cube_size is not None, state)
                else:  # the chroma model has none: it calls its own twice, the first deciding the cubes
                    replaced.append((cm, "quant_dequant", None))
                    cm.quant_dequant = _quantiser(cm, proxy, generator, True, state)
        self.tiling.assign_data = assign_keeping_float
        try:
            yield twins
        finally:
            self.tiling.assign_data = assign
            for owner, name, fn in reversed(replaced):
                if fn is None:
                    owner.__dict__.pop(name, None)  # the method of its class again
                else:
                    setattr(owner, name, fn)

    def forward(self, x: torch.Tensor, proxy: str, generator, cost: torch.Tensor):
        """(reconstruction, estimated bits) of one image, differentiable with respect to ``x``."""
        from .rate import hyper_bits, residual_bits

        with self.proxy(proxy, generator) as twins:
            rec, decisions = self.differentiable(x)
        bits = x.new_zeros(())
        for key, sub in (("model_y", self.tool().model_y), ("model_uv", self.tool().model_uv)):
            d, cm = decisions["CCS_SGMM"][key], sub.common_modules
            quantised = d["residual_quant"]
            twin = [t for dst, t in twins.values() if dst is quantised]
            resid = twin[0] if twin else quantised.float()
            cm.skip_mode._update_mask(d["skip_scale_log"])
            mask = cm.skip_mode.mask()
            mask = torch.ones_like(quantised, dtype=torch.bool) if mask is None else mask.bool()
            n = cm.num_chs
            index = cm.entropy.build_indexes(d["scale_log"][:, :n].int()).long()
            bits = bits + (residual_bits(resid[:, :n], index, cost, proxy) * mask[:, :n]).sum()
            if d["scale_log"].requires_grad:  # the hyperprior's stand-ins (zero-valued)
                bits = bits + hyperprior.scale_bits(cm, d, resid[:, :n], mask[:, :n], index, cost)
            bits = bits + hyper_bits(self.tree, cm, d.get(hyperprior.Z_TWIN, d["z_hat"])).to(bits.device)
        return rec, bits

    def encode(self, x: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """(bitstream, the encoder's reconstruction) of one image."""
        with torch.no_grad():
            rec, decisions = self.ce.compress(self._image(x))
        path = os.path.join(self.tree.workdir, "stream.bin")
        self.coder.create_bs(path)
        self.coder.init_ec_module()
        self.ce.encode(self.coder.ec_module, decisions)
        self.coder.close_bs()
        with open(path, "rb") as f:
            data = f.read()
        os.remove(path)
        return data, self._rgb(rec)

    def decode(self, data: bytes) -> torch.Tensor:
        path = os.path.join(self.tree.workdir, "stream.bin")
        with open(path, "wb") as f:
            f.write(data)
        try:
            self.coder.open_bs(path)
            self.check_profile("the stream's header", "decoder")
            with torch.no_grad():
                decisions = self.ce.decode(self.coder.ec_module, with_headers=False)
                img = self.ce.decompress(decisions)
            self.coder.close_bs()
        finally:
            os.remove(path)
        return self._rgb(img)


def _quantiser(cm, proxy: str, generator, two_pass: bool, state: hyperprior.TileState):
    """A model's quantise-dequantise of the residual: straight-through rounding (``ste``, as the tree's
    own) or additive U(-0.5, 0.5) noise from ``generator`` (``noise``), at the elements the skip mode
    codes, plus the skip decision's stand-in (hyperprior.py) when ``state`` holds soft masks. With cube
    skipping on (``two_pass``) it is called twice per stage: the first call decides the skip cubes and
    keeps the tree's true rounding, so the second codes the same elements as the encoder."""

    def quant_dequant(data, tool_params=None):
        state.calls += 1
        if two_pass and state.calls % 2 == 1:
            return type(cm).quant_dequant(cm, data, tool_params)
        params, mask = tool_params["quantizer"], tool_params["mask2"]
        q = cm.quantizer.quantize_resi(data, params)
        extra = state.extra(q, 2 if two_pass else 1)
        keep = None if mask is None else mask.to(torch.bool)
        if keep is not None:
            q = torch.where(keep, q, torch.zeros_like(q))
        info = torch.iinfo(torch.int16)
        q = q.clamp(info.min, info.max)
        if proxy == "noise":
            where = generator.device if generator is not None else q.device
            noise = torch.rand(q.shape, generator=generator, device=where, dtype=q.dtype).to(q.device) - 0.5
            resid = q + (noise if keep is None else noise * keep)
        else:
            resid = q - (q - q.round()).detach()
        dequantised = cm.quantizer.dequantize_resi(resid, params)
        if extra is not None:  # zero-valued: the gradient of keeping or dropping the residual
            dequantised = dequantised + cm.quantizer.dequantize_resi(extra, params)
        return dequantised, resid

    return quant_dequant


def calibration_image(seed: int = 0, size: int = 256) -> torch.Tensor:
    """A smooth seeded RGB image with some texture, for :func:`calibrate`."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, size // 16, size // 16, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return (x + 0.05 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)


def _convs(module):
    return [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


@torch.no_grad()
def calibrate(engine: Engine, targets=(4.0, 2.0, 10.0, 0.25), seed: int = 0, size: int = 128) -> None:
    """Scale a randomly initialised base model so that every path carries signal: the analysis
    output to std ``targets[0]``, the hyper latent to std ``targets[1]``, the hyper-scale output
    to mean index ``targets[2]``, each synthesis' last layer to peak ``targets[3]`` (around mid-grey).
    With the tree's plain initialisation the latent is ~0.2 and every residual rounds to zero.
    One torch thread (the caller's count comes back when the tree call ends, isolation.py): the
    measured scales, hence the weights, are then the same whatever thread count the caller runs."""
    torch.set_num_threads(1)
    x = calibration_image(seed, size).to(engine.device)
    tool = engine.tool()
    stages = [[], [], []]
    for k, sub in enumerate((tool.model_y, tool.model_uv)):
        cm = sub.common_modules
        stages[0].append((f"analysis{k}", _convs(sub.encoder)[-1], lambda o: o.std(), targets[0]))
        stages[1].append((f"hyper{k}", _convs(cm.hyper_encoder)[-1], lambda o: o.std(), targets[1]))
        stages[2].append((f"scale{k}", cm.hyper_scale_decoder.pointwise, lambda o: o.abs().mean(), targets[2]))
        for name, synthesis in sub.decoder.named_children():
            stages[2].append((f"synthesis{k}{name}", _convs(synthesis)[-1], lambda o: o.abs().max(), targets[3]))
    for plan in stages:
        seen: dict = {}
        hooks = [
            m.register_forward_hook(lambda mod, i, o, key=key: seen.__setitem__(key, o.detach().float()))
            for key, m, _, _ in plan
        ]
        try:
            engine.differentiable(x)
        finally:
            for h in hooks:
                h.remove()
        for key, module, measure, target in plan:
            if key in seen:  # a synthesis off this profile's path is not run
                factor = float(target / max(float(measure(seen[key])), 1e-12))
                module.weight.mul_(factor)
                if getattr(module, "bias", None) is not None:
                    module.bias.mul_(factor)
