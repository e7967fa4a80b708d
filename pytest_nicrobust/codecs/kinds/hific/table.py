"""HiFiC (Mentzer et al., NeurIPS 2020) from the PyTorch port Justin-Tan/high-fidelity-generative-compression:
the suite table (torch-free).

    [[codecs]]
    model = "hific"
    root = "/src/high-fidelity-generative-compression"   # else $NICROBUST_HIFIC_ROOT
    weights = "ckpt/hific-{quality}.pt"                  # its checkpoints, or "random"
    qualities = ["low", "med", "high"]                   # its rate regimes: one checkpoint each

HiFiC has no rate parameter inside a model: the quality only names the checkpoint (and the label).
A checkpoint's recorded ``args`` set the architecture; ``latent_channels``, ``n_residual_blocks``,
``channel_norm`` and ``likelihood_type`` set it for random weights. Its code needs ``autograd``
(HIPS), ``scipy`` and ``tqdm``. The adapter is :mod:`pytest_nicrobust.codecs.kinds.hific.codec`.
"""

from __future__ import annotations

from .. import public_trees

ENV = "NICROBUST_HIFIC_ROOT"
LAYOUTS = (("", "src/hyperprior.py"),)
REGIMES = ("low", "med", "high")  # its target_rate_map
KEYS = {
    "model",
    "root",
    "weights",
    "qualities",
    "latent_channels",
    "n_residual_blocks",
    "channel_norm",
    "likelihood_type",
}


def quality_problem(q) -> str | None:
    return None if q in REGIMES else f"HiFiC's qualities are its rate regimes {', '.join(REGIMES)}"


def check_table(table: dict, base_dir: str) -> dict:
    public_trees.check_keys(table, KEYS)
    folder = public_trees.tree_root(
        table, base_dir, ENV, LAYOUTS, "HiFiC (Justin-Tan/high-fidelity-generative-compression)"
    )
    weights = public_trees.checked_weights(table, base_dir)
    qualities = public_trees.checked_qualities(table, quality_problem)
    options = {
        "root": folder,
        "latent_channels": public_trees.checked_option(table, "latent_channels", int, 220),
        "n_residual_blocks": public_trees.checked_option(table, "n_residual_blocks", int, 9),
        "channel_norm": public_trees.checked_option(table, "channel_norm", bool, True),
        "likelihood_type": public_trees.checked_option(
            table, "likelihood_type", str, "gaussian", ("gaussian", "logistic")
        ),
    }
    return {
        "weights": weights,
        "qualities": qualities,
        "options": options,
        "label": public_trees.default_label("hific", weights),
    }
