"""QRes-VAE (Duan et al., WACV 2023) from duanzhiihao/lossy-vae: the suite table (torch-free).

    [[codecs]]
    model = "qres-vae"
    root = "/src/lossy-vae"                  # else $NICROBUST_QRES_ROOT
    weights = "ckpt/qres34m-lmb{quality}.pt" # its released checkpoints, or "random"
    qualities = [64, 256, 1024]              # qres34m's lambda (one checkpoint each)

lossy-vae is free for non-commercial use only: the user brings it; this adapter is the project's
own code. Its code needs timm >= 0.8 and CompressAI. The adapter is
:mod:`pytest_nicrobust.codecs.kinds.qres_vae.codec`.
"""

from __future__ import annotations

from .. import public_trees

ENV = "NICROBUST_QRES_ROOT"
LAYOUTS = (("", "lvae/models/qresvae/zoo.py"),)
LAMBDAS = (16, 32, 64, 128, 256, 512, 1024, 2048)  # the lambdas qres34m was released at
KEYS = {"model", "root", "weights", "qualities"}


def quality_problem(q) -> str | None:
    ok = isinstance(q, int) and not isinstance(q, bool) and q in LAMBDAS
    return None if ok else f"qres34m's qualities are its lambdas {', '.join(map(str, LAMBDAS))}"


def check_table(table: dict, base_dir: str) -> dict:
    public_trees.check_keys(table, KEYS)
    folder = public_trees.tree_root(table, base_dir, ENV, LAYOUTS, "QRes-VAE (duanzhiihao/lossy-vae)")
    weights = public_trees.checked_weights(table, base_dir)
    qualities = public_trees.checked_qualities(table, quality_problem)
    return {
        "weights": weights,
        "qualities": qualities,
        "options": {"root": folder},
        "label": public_trees.default_label("qres-vae", weights),
    }
