"""pytest-nicrobust: adversarial-robustness release gates for neural image codecs.

The plugin entry point is :mod:`pytest_nicrobust.plugin`; it imports no torch.
Public modules: :mod:`pytest_nicrobust.metrics`, :mod:`pytest_nicrobust.attacks`,
:mod:`pytest_nicrobust.codecs`.
"""

__version__ = "0.1.0"


class NicrobustError(Exception):
    """A problem the user can fix (bad suite, missing data, bad checkpoint).

    The plugin prints only the message for these, never a traceback.
    """

    category = "config error"


class NicrobustWarning(UserWarning):
    """Something the run recovered from but the user should know (a bad cache entry, a missing extra)."""


class DataError(NicrobustError):
    category = "data error"


class CodecError(NicrobustError):
    category = "codec error"


def lazy_attribute(package: str, submodule: str, attr: str):
    """``attr`` of ``package.submodule``, imported on first use: the torch-free faces of the extension
    points (``metrics``, ``defenses``) hand out their heavy halves through this."""
    import importlib

    if attr.startswith("__"):
        raise AttributeError(attr)
    try:
        return getattr(importlib.import_module(f"{package}.{submodule}"), attr)
    except AttributeError:
        raise AttributeError(f"module {package!r} has no attribute {attr!r}") from None
