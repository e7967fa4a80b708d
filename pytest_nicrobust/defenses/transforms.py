"""Input-transform defenses (docs/report.md, Defenses) and the codec wrapper that applies them.

A defense is a transform pair: T before encoding, T⁻¹ after decoding. ``sample`` draws
the random parameters of one use (the same draw serves x and x': common random numbers);
``apply`` is T and ``invert`` is T⁻¹. :class:`DefendedCodec` wraps any codec so that
``forward`` and ``roundtrip`` go through T, the codec and T⁻¹ — it is itself a codec,
so every attack can be run through it (adaptive attack). With ``draw=FRESH`` and
``eot_samples=K`` an attack averages its objective over K fresh draws per step, each with its
own clean reference: expectation over transformation (EOT).

Non-differentiable transforms (JPEG pre-compression) pass gradients straight through.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..codecs.base import Codec, ForwardOutput, RoundTrip, round_to_8bit

FRESH = "fresh draw per call (EOT)"


def _randint(generator, high: int) -> int:
    return int(torch.randint(high, (1,), generator=generator, device=generator.device).item())


class Defense:
    """Base class: identity. Subclasses override ``apply``/``invert`` (and ``sample`` if random)."""

    name = "identity"
    random = False  # draws differ between uses: the adaptive attack averages over them
    reversible = True  # T⁻¹(T(x)) == x
    extra_bits = 0.0  # side information sent with each image

    def sample(self, generator: torch.Generator):
        return None

    def apply(self, x, draw):
        return x

    def invert(self, y, draw):
        return y

    def describe(self, draw) -> str:
        return self.name if draw is None else f"{self.name} {draw}"

    # How the transform wraps a codec; self-ensemble overrides both.
    def forward(self, codec, x, proxy, generator, draw) -> ForwardOutput:
        out = codec.forward(self.apply(x, draw), proxy, generator)
        return ForwardOutput(self.invert(out.x_hat, draw), out.bpp + self.extra_bits / x[0, 0].numel())

    def roundtrip(self, codec, x, draw) -> RoundTrip:
        rt = codec.roundtrip(self.apply(x, draw))
        return RoundTrip(
            round_to_8bit(self.invert(rt.x_hat, draw)), rt.nbytes, rt.bpp + self.extra_bits / x[0, 0].numel()
        )


class Flip(Defense):
    """Horizontal mirror."""

    name = "flip"

    def apply(self, x, draw):
        return x.flip(-1)

    invert = apply


class Roll(Defense):
    """Cyclic shift by a random fraction of the height and width."""

    name, random = "roll", True

    def sample(self, generator):
        return (_randint(generator, 1 << 16) / (1 << 16), _randint(generator, 1 << 16) / (1 << 16))

    @staticmethod
    def _shifts(x, draw):
        return int(draw[0] * x.shape[-2]), int(draw[1] * x.shape[-1])

    def apply(self, x, draw):
        return torch.roll(x, self._shifts(x, draw), dims=(-2, -1))

    def invert(self, y, draw):
        dy, dx = self._shifts(y, draw)
        return torch.roll(y, (-dy, -dx), dims=(-2, -1))


class Rotate(Defense):
    """Rotation by 90, 180 or 270 degrees."""

    name, random = "rotate", True

    def sample(self, generator):
        return 1 + _randint(generator, 3)

    def apply(self, x, draw):
        return torch.rot90(x, draw, dims=(-2, -1))

    def invert(self, y, draw):
        return torch.rot90(y, -draw, dims=(-2, -1))


_PERMUTATIONS = [p for p in itertools.permutations(range(3)) if p != (0, 1, 2)]


class ColorReorder(Defense):
    """A random non-identity permutation of the RGB channels."""

    name, random = "color-reorder", True

    def sample(self, generator):
        return _PERMUTATIONS[_randint(generator, len(_PERMUTATIONS))]

    def apply(self, x, draw):
        return x[:, list(draw)]

    def invert(self, y, draw):
        return y[:, list(np.argsort(draw))]


class RandomEnsemble(Defense):
    """A random composition of roll, rotate and colour reorder (each used with probability 1/2)."""

    name, random = "random-ensemble", True
    parts = (Roll(), Rotate(), ColorReorder())

    def sample(self, generator):
        order = torch.randperm(len(self.parts), generator=generator, device=generator.device).tolist()
        chosen = [i for i in order if _randint(generator, 2)] or order[:1]
        return tuple((i, self.parts[i].sample(generator)) for i in chosen)

    def apply(self, x, draw):
        for i, d in draw:
            x = self.parts[i].apply(x, d)
        return x

    def invert(self, y, draw):
        for i, d in reversed(draw):
            y = self.parts[i].invert(y, d)
        return y

    def describe(self, draw):
        return "random-ensemble " + " then ".join(f"{self.parts[i].name} {d}" for i, d in draw)


_DIHEDRAL = [(k, f) for f in (False, True) for k in range(4)]


def _dihedral(x, v):
    k, f = v
    return torch.rot90(x.flip(-1) if f else x, k, dims=(-2, -1))


def _dihedral_inverse(y, v):
    k, f = v
    y = torch.rot90(y, -k, dims=(-2, -1))
    return y.flip(-1) if f else y


class SelfEnsemble(Defense):
    """Encode all 8 dihedral variants, keep the one closest to the input; the choice costs 3 bits."""

    name = "self-ensemble"
    extra_bits = 3.0

    @staticmethod
    def _pick(errors):  # errors: (8, N) -> variant index per image
        return torch.stack(errors).argmin(dim=0).tolist()

    def forward(self, codec, x, proxy, generator, draw):
        with torch.no_grad():  # choose the variant as the encoder would (rounded latents)
            errors = [
                (_dihedral_inverse(codec.forward(_dihedral(x, v), "ste").x_hat, v) - x).pow(2).flatten(1).mean(1)
                for v in _DIHEDRAL
            ]
        picks = self._pick(errors)
        x_hat, bpp = [None] * len(x), [None] * len(x)
        for vi in sorted(set(picks)):
            idx = [i for i, p in enumerate(picks) if p == vi]
            out = codec.forward(_dihedral(x[idx], _DIHEDRAL[vi]), proxy, generator)
            rec = _dihedral_inverse(out.x_hat, _DIHEDRAL[vi])
            for j, i in enumerate(idx):
                x_hat[i], bpp[i] = rec[j], out.bpp[j]
        return ForwardOutput(torch.stack(x_hat), torch.stack(bpp) + self.extra_bits / x[0, 0].numel())

    def roundtrip(self, codec, x, draw):
        trips = [codec.roundtrip(_dihedral(x, v)) for v in _DIHEDRAL]
        recs = [_dihedral_inverse(t.x_hat, v) for t, v in zip(trips, _DIHEDRAL)]
        picks = self._pick([(r - x).pow(2).flatten(1).mean(1) for r in recs])
        x_hat = torch.stack([recs[p][i] for i, p in enumerate(picks)])
        nbytes = [trips[p].nbytes[i] for i, p in enumerate(picks)]
        bpp = torch.stack([trips[p].bpp[i] for i, p in enumerate(picks)]) + self.extra_bits / x[0, 0].numel()
        return RoundTrip(x_hat, nbytes, bpp)


def jpeg_compress(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG encode + decode of each image through Pillow (no gradient)."""
    from PIL import Image

    out = []
    for im in x.detach():
        arr = (im.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        out.append(torch.from_numpy(dec.copy()).permute(2, 0, 1))
    return torch.stack(out).to(x.device, x.dtype) / 255


class JPEGPrecompression(Defense):
    """Non-reversible baseline: JPEG the input first (straight-through gradient)."""

    name, reversible = "jpeg", False

    def __init__(self, quality: int = 75):
        self.quality = quality

    def apply(self, x, draw):
        return x + (jpeg_compress(x, self.quality) - x).detach()

    def describe(self, draw):
        return f"jpeg q{self.quality}"


class GaussianBlur(Defense):
    """Non-reversible baseline: Gaussian blur of the input (differentiable)."""

    name, reversible = "blur", False

    def __init__(self, sigma: float = 1.0):
        self.sigma = sigma

    def apply(self, x, draw):
        r = max(1, int(round(3 * self.sigma)))
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-(t**2) / (2 * self.sigma**2))
        k = k / k.sum()
        x = F.pad(x, (r, r, r, r), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
        return F.conv2d(x, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)

    def describe(self, draw):
        return f"blur sigma {self.sigma:g}"


BUILTIN_DEFENSES = {
    d.name: d
    for d in (Flip, Roll, Rotate, ColorReorder, RandomEnsemble, SelfEnsemble, JPEGPrecompression, GaussianBlur)
}


def builtin_defense(name: str) -> Defense:
    return BUILTIN_DEFENSES[name]()


class DefendedCodec(Codec):
    """``codec`` behind ``defense``: T, codec, T⁻¹. ``draw``: a fixed draw, or FRESH (EOT)."""

    def __init__(self, codec: Codec, defense: Defense, draw=FRESH, eot_samples: int = 0):
        super().__init__(replace(codec.info, label=f"{codec.info.label}+{defense.name}"), codec.device)
        self.codec, self.defense, self.draw = codec, defense, draw
        self.eot_samples = eot_samples  # with draw=FRESH: attacks average over this many draws per step
        self.multiple = codec.multiple

    def eot_views(self, generator):
        if self.draw is not FRESH or self.eot_samples <= 0:
            return None
        return [DefendedCodec(self.codec, self.defense, self._draw(generator)) for _ in range(self.eot_samples)]

    def _draw(self, generator):
        if self.draw is not FRESH:
            return self.draw
        return self.defense.sample(generator if generator is not None else torch.Generator().manual_seed(0))

    def forward(self, x, proxy="noise", generator=None):
        return self.defense.forward(self.codec, x, proxy, generator, self._draw(generator))

    @torch.no_grad()
    def roundtrip(self, x):
        return self.defense.roundtrip(self.codec, x, self._draw(None))

    __call__ = forward
