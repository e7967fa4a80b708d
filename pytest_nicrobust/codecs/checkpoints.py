"""Checkpoint files: untrusted data, read as plain tensors only.

Every codec kind reads its weights here: ``torch.load(..., weights_only=True)`` (no pickled code
runs), one clear :class:`~pytest_nicrobust.CodecError` naming the codec and the file for anything
else (missing, corrupt, holding code, not a state dict).
"""

from __future__ import annotations

import torch

from .. import CodecError


def float32(state_dict: dict) -> dict:
    """Every floating-point tensor as float32 (half-precision checkpoints load into float32 models)."""
    return {k: (v.float() if torch.is_floating_point(v) else v) for k, v in state_dict.items()}


def read_checkpoint(path, what: str):
    """The object in a checkpoint file, read with ``torch.load(weights_only=True)`` (tensors and plain
    containers only); a clear CodecError naming ``what`` and the file for anything else."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CodecError(f"{what}: checkpoint file not found: {path}") from None
    except Exception as exc:  # corrupt file, pickle with code, wrong format
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        if "weights_only" in str(exc) or "Unpickl" in type(exc).__name__:
            first = "torch.load(weights_only=True) refused it: not a file of plain tensors (corrupt, or it holds code)"
        raise CodecError(f"{what}: cannot read checkpoint {path}: {type(exc).__name__}: {first}") from None
    return obj


def load_state_dict_file(path, what: str):
    """A state_dict of tensors (CompressAI's ``{"state_dict": ...}`` checkpoints unwrapped), from :func:`read_checkpoint`."""
    obj = read_checkpoint(path, what)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CodecError(f"{what}: {path} does not hold a state_dict of tensors")
    return obj


def strip_prefix(state_dict: dict, prefix: str = "module.") -> dict:
    """Checkpoints saved from ``DataParallel`` prefix every key with ``module.``."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return state_dict
