"""A gradient through JPEG AI's integer hyperprior: BPDA (Athalye, Carlini and Wagner, ICML 2018).

The reference software rounds the hyper latent to int8 and runs its hyper-scale decoder in integer
arithmetic, so the scale indices that choose each residual's distribution, and the skip decisions
they make, are constants for a gradient attack. With the codec key ``hyper_gradient = true`` (the
default) the forward pass stays the tree's own, bit for bit, and the backward pass goes through
stand-ins (each one a zero-valued term whose gradient is the stand-in's):

* **hyper latent**: the int8 rounding passes the gradient of the float latent ``z`` (its
  straight-through twin, kept beside the tree's integers);
* **scale decoder**: a float twin of the tree's own layers (:func:`float_scale_decoder`: an integer
  convolution without its flooring shift, divided by ``2**shift`` instead and lowered by the
  floor's mean; the float path of weights that are not quantised) gives the scale twins their
  gradient;
* **mean**: the hyper decoder (a float network) runs on the twin latent, so the prediction it makes
  carries a gradient too;
* **scale-index choice**: a residual's bits move to the neighbouring tables as its scale does
  (rate.py, :func:`~.rate.index_slope`);
* **skip decision** (an element is coded when its scale exceeds a threshold, or when the encoder
  codes its whole cube): a sigmoid of the scale's distance to the threshold, one index step wide
  (:func:`soft_coded`), only where the cube does not decide. In the reconstruction it scales the
  residual the skip keeps or drops; in the bits, a skipped element gains the bits its residual
  would cost if coded. The symmetric stand-in (a coded element also saving its bits when skipped)
  made PGD weaker where it was measured (docs/jpegai.md), so it is not used.

:func:`hooks` installs the twins on a model's common modules for one differentiable pass;
:func:`scale_bits` is the bits' part of the stand-ins, counted by engine.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .rate import index_slope, values_bits

Z_TWIN = "nicrobust_z_twin"  # the decisions key of the hyper latent's float twin
SCALES = ("scale_log_origin", "skip_scale_log", "scale_log")  # the tree's integer scales, twinned


def zero_valued(t: torch.Tensor) -> torch.Tensor:
    """0 in the forward pass, the gradient of ``t`` in the backward pass."""
    return t - t.detach()


def _quantised(module) -> bool:
    flag = getattr(module, "is_quantized", None)
    return flag is not None and bool(flag.flatten()[0].item())


def float_scale_decoder(decoder, z: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The scale twin of the hyper-scale decoder ``decoder`` on a float hyper latent ``z``: its own
    layers, with each integer convolution in float (inputs clamped as the tree clamps them, the
    result divided by ``2**shift`` where the tree shifts right, less the floor's mean), in the
    fixed-point units of the scales it outputs."""
    patched = []
    for m in decoder.modules():
        if hasattr(m, "per_channel_shifts") and _quantised(m):

            def conv(x, m=m):
                x = x.clamp(-m.max_signal_value - 1, m.max_signal_value)
                bias = None if m.bias is None else m.bias.float()
                out = F.conv2d(x.float(), m.weight.float(), bias, m.stride, m.padding, m.dilation, m.groups)
                step = 2.0 ** m.per_channel_shifts.float()
                return out / step - (1 - 1 / step) / 2  # the right shift floors: on average by this much

            m.forward = conv
            patched.append(m)
    try:
        out = decoder(z.float(), h, w)
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)
    if not _quantised(decoder.pointwise):  # the tree scales float weights' output to fixed point itself
        out = (out * 2.0**decoder.sigma_out_precision).clamp(0, decoder.sigma_idx_max_value)
    return out.float()


def soft_coded(skip_mode, skip_scale: torch.Tensor) -> torch.Tensor:
    """The skip decision's stand-in: sigmoid of the scale's distance to the skip threshold, in units
    of one index step (``2**precision``); the tree codes an element when its scale exceeds it."""
    power = skip_mode.unscaled_sigma_precision - skip_mode.skip_thr_precision
    threshold = skip_mode.thr_skip * 2.0 ** max(power, 0)
    scale = skip_scale * 2.0 ** max(-power, 0)
    return torch.sigmoid((scale - threshold) / 2.0**skip_mode.unscaled_sigma_precision)


class TileState:
    """What one model's quantiser needs of the tile being coded: the soft skip masks by stage and the
    cube map the tree derived in the first pass of the current stage."""

    def __init__(self):
        self.soft: list | None = None
        self.cube: torch.Tensor | None = None
        self.calls = 0

    def extra(self, q: torch.Tensor, calls_per_stage: int) -> torch.Tensor | None:
        """The zero-valued residual whose gradient is the skip decision's (the last call of a stage)."""
        if self.soft is None or not q.requires_grad:
            return None
        stage = (self.calls - 1) // calls_per_stage
        free = torch.ones_like(q) if self.cube is None else (~self.cube.to(torch.bool)).to(q.dtype)
        info = torch.iinfo(torch.int16)
        return zero_valued(self.soft[stage]) * free * q.clamp(info.min, info.max)


def hooks(cm, twins: dict, state: TileState, utils) -> list[tuple[object, str]]:
    """Install the twins on one model's common modules ``cm`` (see the module docstring); returns the
    (object, attribute) pairs set, to be removed after the pass. ``utils``: the tree's ContextUtils."""
    cls = type(cm)
    ctx = getattr(cm, "context", None)

    def compress_z(y, decision, h, w):
        cls._compress_z(cm, y, decision, h, w)
        if decision["z"].requires_grad:  # the int8 latent, with the float latent's gradient
            decision["z_hat"] = decision["z_hat"].float() + zero_valued(decision["z"])
        return decision

    def encoder_get_scales(decisions, img_shape):
        cls.encoder_get_scales(cm, decisions, img_shape)
        twin = twins.get(id(decisions["z_hat"]))
        if twin is None:  # no gradient wanted
            return
        z = twin[1]
        gradient = zero_valued(float_scale_decoder(cm.hyper_scale_decoder, z, img_shape[2], img_shape[3]))
        for key in SCALES:
            decisions[key] = decisions[key].float() + gradient
        decisions["z_hat"] = decisions[Z_TWIN] = z  # the hyper decoder (the mean) runs on the twin

    def compress_ar_scale(y, decisions):
        state.calls, state.soft, state.cube = 0, None, None
        skip = decisions.get("skip_scale_log")
        if skip is not None and skip.requires_grad:
            soft = soft_coded(cm.skip_mode, skip)
            if ctx is not None:  # staged as the context model stages its skip mask
                h, w = soft.shape[-2:]
                state.soft = list(utils.down_shuffle(F.pad(soft, (0, w % 2, 0, h % 2))))
            else:
                state.soft = [soft]
        return cls._compress_ar_scale(cm, y, decisions)

    target = ctx if ctx is not None else cm.skip_mode
    target_cls = type(target)

    def convert_cubeflag_map(init_map, output_shape):
        state.cube = target_cls.convert_cubeflag_map(target, init_map, output_shape)
        return state.cube

    cm._compress_z = compress_z
    cm.encoder_get_scales = encoder_get_scales
    cm._compress_ar_scale = compress_ar_scale
    target.convert_cubeflag_map = convert_cubeflag_map
    return [
        (cm, "_compress_z"),
        (cm, "encoder_get_scales"),
        (cm, "_compress_ar_scale"),
        (target, "convert_cubeflag_map"),
    ]


def scale_bits(cm, decisions, resid: torch.Tensor, mask: torch.Tensor, index: torch.Tensor, cost) -> torch.Tensor:
    """The bits' stand-ins of one model (zero-valued): the scale-index choice at the coded elements and
    the skip decision at the skipped ones outside coded cubes. ``resid``, ``mask``, ``index``: the
    coded channels' residual twin, the coded mask and the table indices."""
    n = index.shape[1]
    scale, skip = decisions["scale_log"][:, :n], decisions["skip_scale_log"][:, :n]
    values = resid.detach().round()
    per_step = 2.0**cm.entropy.scale_table_precision  # scale units per table index
    bits = (zero_valued(scale) / per_step * index_slope(cost, index, values) * mask).sum()
    cube = cm.skip_mode.cube_flags_full
    free = ~mask if cube is None else ~mask & ~cube.to(torch.bool)[:, :n]
    if free.any():  # what a skipped element's residual would cost: its value from y and the prediction
        would = cm.quantizer.quantize_resi((decisions["y"] - decisions["y_hat"]).detach(), decisions["quantizer"])
        cost_if_coded = values_bits(cost, index, would[:, :n].round())
        bits = bits + (zero_valued(soft_coded(cm.skip_mode, skip)) * free * cost_if_coded).sum()
    return bits
