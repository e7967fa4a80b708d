"""CompressAI's pretrained zoo through the torch hub cache.

The file is looked up in ``$TORCH_HOME/hub/checkpoints`` under the name CompressAI's
URL ends with; the hex after the last ``-`` of that name is a SHA-256 prefix, checked
before the file is loaded. A missing file is downloaded only when the network allows.
"""

from __future__ import annotations

import os
import re

from ... import CodecError
from ...files import sha256_of

_HASH = re.compile(r"-([0-9a-f]{8,64})\.")


def zoo_url(architecture: str, quality: int, metric: str = "mse") -> str:
    from compressai.zoo.image import model_urls

    try:
        return model_urls[architecture][metric][quality]
    except KeyError:
        raise CodecError(
            f"CompressAI's zoo has no pretrained {architecture} for metric={metric!r}, quality={quality}"
        ) from None


def cache_path(url: str) -> str:
    import torch.hub

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def fetch(architecture: str, quality: int, metric: str = "mse") -> str:
    """Path of the verified cached checkpoint; downloads it only if missing."""
    import torch.hub

    url = zoo_url(architecture, quality, metric)
    path = cache_path(url)
    prefix = _HASH.search(os.path.basename(url)).group(1)
    if not os.path.exists(path):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)  # a first download: else the missing folder is the error
            torch.hub.download_url_to_file(url, path, hash_prefix=prefix, progress=False)
        except Exception as exc:
            raise CodecError(
                f"{architecture} q{quality}: pretrained weights are not in the torch hub cache ({path}) "
                f"and could not be downloaded ({type(exc).__name__}: {exc}). Put the file there, "
                f'use weights = "nicrobust" for the shipped models, or a local checkpoint path.'
            ) from None
    digest = sha256_of(path)
    if not digest.startswith(prefix):
        raise CodecError(
            f"{architecture} q{quality}: cached file {path} is corrupt or not the expected one: "
            f"its SHA-256 starts with {digest[: len(prefix)]}, its name says {prefix}. Delete it and retry."
        )
    return path
