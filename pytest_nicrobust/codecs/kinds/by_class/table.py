"""Codecs named by class in a suite: the table's keys, checked without torch at collection.

Any model with CompressAI's interface, no factory to write::

    [[codecs]]
    class = "models:TCM"                    # module:Class, a class of torch.nn.Module
    path = "third_party/LIC_TCM"            # optional: the research tree it comes from
    options = { N = 64, M = 320 }           # constructor keywords
    weights = "ckpt/tcm-{quality}.pth.tar"  # a state dict (plain, or {"state_dict": ...}); "random": seeded init
    qualities = ["0.0025", "0.013"]         # labels; {quality} in weights picks the file
    name = "tcm"
    multiple = 128                          # optional: pad H and W to a multiple of this (default 64)
    min_size = 256                          # optional: and to at least this size (default 0)

The model needs ``forward(x) -> {"x_hat", "likelihoods"}``, ``compress(x) -> {"strings", "shape"}``,
``decompress(strings, shape) -> {"x_hat"}`` and ``update(force=True)``, and must quantise through
CompressAI entropy modules. Here: key types, that ``path`` and each weights file exist, labels.
Importing, building and loading weights happen at run time in :mod:`.codec`.
"""

from __future__ import annotations

import os
import re

from ...registry import TableError

KEYS = ("class", "path", "options", "weights", "qualities", "name", "multiple", "min_size")
_CLASS_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_LABEL_BAD = re.compile(r"[\s\"',\[\]()=]|::")


def _positive_int(t, key, default, minimum):
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TableError(key, f"expected an integer >= {minimum}, got {value!r}")
    return value


def check_table(table: dict, base_dir: str) -> dict:
    """``{"weights", "qualities", "options", "label"}`` of a class table, paths made absolute
    against ``base_dir`` (the suite's folder); :class:`TableError` names the key at fault."""
    for other in ("model", "spec"):
        if other in table:
            raise TableError(other, 'a codec named by class takes class = "module:Class", not model or spec too')
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise TableError(unknown[0], f"unknown key for a codec named by class; the keys are {', '.join(KEYS)}")
    target = table.get("class")
    if not isinstance(target, str) or not _CLASS_PATH.fullmatch(target):
        raise TableError("class", f"expected 'module:Class' (a class of torch.nn.Module), got {target!r}")
    folder = table.get("path")
    if folder is not None:
        if not isinstance(folder, str) or not folder:
            raise TableError("path", f"expected a folder, got {folder!r}")
        folder = os.path.normpath(os.path.join(base_dir, os.path.expanduser(folder)))
        if not os.path.isdir(folder):
            raise TableError("path", f"folder {folder} does not exist")
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise TableError("options", f"expected a table of constructor keywords, e.g. {{ N = 64 }}, got {options!r}")
    for key in options:
        if not key.isidentifier():
            raise TableError(f"options.{key}", "not a keyword argument name")
    weights = table.get("weights")
    if not isinstance(weights, str) or not weights:
        raise TableError(
            "weights",
            f'give a state-dict file (it may hold {{quality}}) or "random" for a seeded random init, got {weights!r}',
        )
    qualities = table.get("qualities", [None])
    if not isinstance(qualities, list) or not qualities:
        raise TableError("qualities", f"expected a non-empty list, got {qualities!r}")
    for q in qualities:
        if q is not None and (isinstance(q, bool) or not isinstance(q, (int, str)) or _LABEL_BAD.search(str(q))):
            raise TableError("qualities", f"qualities are integers or strings without spaces, commas or '=', got {q!r}")
    if len(set(qualities)) != len(qualities):
        raise TableError("qualities", f"repeated quality in {qualities}")
    if weights != "random":
        weights = os.path.normpath(os.path.join(base_dir, os.path.expanduser(weights)))
        if "{quality}" in weights and qualities == [None]:
            raise TableError("weights", "holds {quality} but the table gives no qualities")
        for q in qualities:
            file = weights.replace("{quality}", str(q))
            if not os.path.isfile(file):
                raise TableError(
                    "weights", f"checkpoint {file} does not exist" + (f" (quality {q!r})" if q is not None else "")
                )
    multiple = _positive_int(table, "multiple", 64, 1)
    min_size = _positive_int(table, "min_size", 0, 0)
    if min_size % multiple:
        raise TableError("min_size", f"{min_size} is not a multiple of multiple ({multiple})")
    name = target.rpartition(":")[2].rpartition(".")[2]
    label = table.get("name", f"random-{name}" if weights == "random" else name)
    if not isinstance(label, str) or not label or _LABEL_BAD.search(label):
        raise TableError(
            "name", f"{label!r}: a label has no spaces, quotes, commas, brackets, parentheses, '=' or '::'"
        )
    return {
        "weights": weights,
        "qualities": qualities,
        "label": label,
        "options": {
            "class": target,
            "path": folder,
            "options": options,
            "multiple": multiple,
            "min_size": min_size,
            "home": base_dir,
        },
    }
