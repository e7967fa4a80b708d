"""Does a codec's estimated rate track its real bitstream? The rule ``check-codec`` applies.

Attacks follow the gradient of the *estimated* rate; the gates measure the *real* bitstream.
What an attack needs is an estimate that moves with the real rate, not one equal to it: a proxy
off by a steady factor (a generic compressor behind a learned model, the JPEG AI reference
software's ~1.8x) still points the bitrate attack the right way. So each test image is coded
clean and in :data:`VARIANTS` (smoothed, which lowers the rate, and with seeded uniform noise,
which raises it), and within the family of each image:

* **ordering**: every pair of variants whose real rates differ by at least :data:`DISTINCT`
  (relative) has its estimated rates in the same order; at most :data:`MAX_DISCORDANT` pair out
  of order per image;
* **steady ratio**: the slope of log(estimated) against log(real) (least squares) is within
  :data:`SLOPE_RANGE`: the estimate moves by between half and twice as much as the real rate,
  in relative terms (a constant proxy has slope 0, an inverted one a negative slope);
* **units**: the geometric-mean ratio estimated / real is within :data:`UNITS_RANGE` (a factor
  beyond that is a units mistake: bpp or bytes instead of bits).

A family whose real rate moves by less than :data:`MIN_MOVEMENT` cannot be judged for tracking
(a random-weights model whose latents all quantise to zero): it passes if the estimate does not
move either, with a note. The offset itself (the geometric-mean ratio outside
:data:`OFFSET_WARN`) is reported as a warning, not a failure.
"""

from __future__ import annotations

import math

VARIANTS = ("smooth 5x5", "clean", "noise ±8/255", "noise ±32/255")
DISTINCT = 0.05
MAX_DISCORDANT = 1
SLOPE_RANGE = (0.5, 2.0)
UNITS_RANGE = (0.25, 4.0)
OFFSET_WARN = (0.8, 1.25)
MIN_MOVEMENT = 1.10  # max / min real rate within a family


def perturbed(x, generator):
    """(len(VARIANTS) * N, 3, H, W): the variants of ``x`` (N, 3, H, W), variant-major."""
    import torch
    import torch.nn.functional as F

    out = []
    for name in VARIANTS:
        if name == "clean":
            out.append(x)
        elif name.startswith("smooth"):
            k = int(name.split()[1].partition("x")[0])
            out.append(F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1))
        else:
            amplitude = int(name.split("±")[1].partition("/")[0]) / 255
            u = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
            out.append((x + (2 * u - 1) * amplitude).clamp(0, 1))
    return torch.cat(out)


def measure(codec, x) -> tuple[list[list[float]], list[list[float]]]:
    """Real and estimated (ste proxy) bpp, ``[image][variant]``, of ``x`` (N, 3, H, W) in :data:`VARIANTS`."""
    import torch

    n, k = x.shape[0], len(VARIANTS)
    batch = perturbed(x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        est = codec.forward(batch, proxy="ste").bpp.double().cpu().tolist()
    real = codec.roundtrip(batch).bpp.double().tolist()
    return (
        [[real[v * n + i] for v in range(k)] for i in range(n)],
        [[est[v * n + i] for v in range(k)] for i in range(n)],
    )


def _slope(xs, ys):
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx


def judge(real: list[list[float]], est: list[list[float]]) -> tuple[bool, str, str]:
    """``real[i][k]``, ``est[i][k]``: bpp of image i in variant k. Returns (passed, detail, warning)."""
    problems, notes, parts = [], [], []
    ratios = []
    for i, (r, e) in enumerate(zip(real, est)):
        if min(r) <= 0 or min(e) <= 0:
            problems.append(f"image {i}: a rate is not positive (real {r}, estimated {e})")
            continue
        ratios += [b / a for a, b in zip(r, e)]
        moved_real, moved_est = max(r) / min(r), max(e) / min(e)
        if moved_real < MIN_MOVEMENT:
            if moved_est >= MIN_MOVEMENT:
                problems.append(
                    f"image {i}: the estimate moves x{moved_est:.2f} while the real rate stays (x{moved_real:.2f})"
                )
            else:
                notes.append(f"image {i}: neither rate responds to the input (x{moved_real:.2f}), tracking not judged")
            continue
        pairs = discordant = 0
        for a in range(len(r)):
            for b in range(a + 1, len(r)):
                if abs(r[a] - r[b]) >= DISTINCT * max(r[a], r[b]):
                    pairs += 1
                    discordant += (e[a] - e[b]) * (r[a] - r[b]) <= 0
        slope = _slope(r, e)
        parts.append(
            f"image {i}: real x{moved_real:.2f}, {pairs - discordant}/{pairs} pairs in order, slope {slope:.2f}"
        )
        if discordant > MAX_DISCORDANT:
            problems.append(f"image {i}: {discordant} of {pairs} pairs out of order")
        if not SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]:
            problems.append(f"image {i}: slope {slope:.2f} outside {SLOPE_RANGE[0]:g}..{SLOPE_RANGE[1]:g}")
    offset = math.exp(sum(math.log(v) for v in ratios) / len(ratios)) if ratios else float("nan")
    if ratios and not UNITS_RANGE[0] <= offset <= UNITS_RANGE[1]:
        problems.append(
            f"estimated / real x{offset:.3g}, beyond {UNITS_RANGE[0]:g}..{UNITS_RANGE[1]:g}: "
            "bits (not bpp or bytes) from _forward_padded?"
        )
    variants = ", ".join(VARIANTS)
    detail = (
        f"over {variants}: "
        + "; ".join(parts + notes)
        + f"; estimated / real x{offset:.3f} (want ≤ {MAX_DISCORDANT} pair out of order where real rates differ "
        f"≥ {100 * DISTINCT:g} %, log-log slope {SLOPE_RANGE[0]:g}..{SLOPE_RANGE[1]:g}, "
        f"ratio {UNITS_RANGE[0]:g}..{UNITS_RANGE[1]:g})"
    )
    if problems:
        detail = "; ".join(problems) + " -- " + detail
    warning = ""
    if ratios and not problems and not OFFSET_WARN[0] <= offset <= OFFSET_WARN[1]:
        warning = (
            f"the estimated rate is x{offset:.2f} the real one (steady, so attacks are steered right; "
            "rate terms of mixed objectives weigh that much more or less)"
        )
    return not problems, detail, warning
