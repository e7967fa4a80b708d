"""Fixtures shared by the plugin's own tests."""

from __future__ import annotations

import pytest
from helpers import tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_pt(tmp_path_factory):
    """A tiny random CompressAI checkpoint. Session scope: made before pytester snapshots
    sys.modules, so torch is imported once (a second import fails to register its libraries)."""
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")
