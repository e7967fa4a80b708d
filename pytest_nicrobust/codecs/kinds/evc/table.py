"""EVC (Wang et al., ICLR 2023) from microsoft/DCVC's ``DCVC-family/EVC``: the suite table (torch-free).

    [[codecs]]
    model = "evc"
    root = "/src/DCVC"            # the DCVC checkout (or its DCVC-family/EVC folder); else $NICROBUST_DCVC_ROOT
    arch = "EVC_LL"               # one of EVC's image models (default EVC_LL)
    weights = "ckpt/EVC_LL.pth.tar"   # or "random"
    qualities = [0, 3, "s0.8"]    # rate index 0..3 (the checkpoint's q_scale anchors, 0 = coarsest) or "s<q_scale>"

Its native rANS modules must be built first, as its README says (``cmake ../cpp; make`` in ``src/build``).
The adapter (and the hook's loader) is :mod:`pytest_nicrobust.codecs.kinds.evc.codec`.
"""

from __future__ import annotations

import os

from ...registry import TableError
from .. import public_trees

ENV = "NICROBUST_DCVC_ROOT"
LAYOUTS = (("DCVC-family/EVC", "src/models/image_model.py"), ("", "src/models/image_model.py"))
# EVC's single-rate image models with the forward(x, q_scale) / compress / decompress API
# (its Scale_EVC_* models take a different path and are not wired)
ARCHS = ("EVC_LL", "EVC_LM", "EVC_LS", "EVC_ML", "EVC_SL", "EVC_MM", "EVC_SS")
ANCHORS = 4  # q_scale anchors in an EVC checkpoint (its anchor_num)
Q_SCALE_RANGE = (0.01, 655.35)  # what EVC's stream header can hold (q_index = round(100 q) in 16 bits)
KEYS = {"model", "root", "arch", "weights", "qualities"}


def quality_problem(q) -> str | None:
    """Why ``q`` is not an EVC quality (None when it is one)."""
    if isinstance(q, int) and not isinstance(q, bool):
        return None if 0 <= q < ANCHORS else f"a rate index is 0..{ANCHORS - 1}"
    if isinstance(q, str) and q.startswith("s"):
        try:
            value = float(q[1:])
        except ValueError:
            value = None
        lo, hi = Q_SCALE_RANGE
        if value is not None and lo <= value <= hi:
            return None
        return f"'s<q_scale>' takes a q_scale within {lo}..{hi}"
    return f"a rate index 0..{ANCHORS - 1} or 's<q_scale>'"


def check_table(table: dict, base_dir: str) -> dict:
    public_trees.check_keys(table, KEYS)
    folder = public_trees.tree_root(table, base_dir, ENV, LAYOUTS, "EVC (microsoft/DCVC)")
    models = os.path.join(folder, "src", "models")
    if public_trees.native_module(models, "MLCodec_rans") is None:
        raise TableError(
            "root",
            f"{models} has no built MLCodec_rans module: build EVC's native coder as its "
            "README says (mkdir src/build; cd src/build; cmake ../cpp -DCMAKE_BUILD_TYPE=Release; make)",
        )
    arch = public_trees.checked_option(table, "arch", str, "EVC_LL", ARCHS)
    weights = public_trees.checked_weights(table, base_dir)
    qualities = public_trees.checked_qualities(table, quality_problem)
    return {
        "weights": weights,
        "qualities": qualities,
        "options": {"root": folder, "arch": arch},
        "label": public_trees.default_label("evc", weights),
    }
