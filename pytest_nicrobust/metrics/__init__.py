"""Full-reference metrics and the deltas a test gates.

The face is torch-free: the vocabulary (:data:`METRICS`, :data:`GATES`, :func:`parse_metrics`, ...)
comes from :mod:`.registry`; the metrics themselves (``psnr``, ``mse``, ``ms_ssim``, ``vmaf``,
``bpp_from_bytes``, ...) from :mod:`.full_reference` on first use, and the per-test deltas from
:mod:`.deltas`. Adding a metric: its name and smallest image in :mod:`.registry` (with its
``delta_``/``amp_`` gates), its function in :mod:`.full_reference`.
"""

from .. import lazy_attribute
from .registry import GATES, METRICS, MIN_SIDE, base_metric, min_side, parse_metrics

__all__ = ["GATES", "METRICS", "MIN_SIDE", "base_metric", "min_side", "parse_metrics"]


def __getattr__(attr):
    return lazy_attribute(__name__, "full_reference", attr)
