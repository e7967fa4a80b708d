"""Running a JPEG AI tree's code inside the plugin's process without it touching anything else.

The reference software's top-level package is called ``src``; it imports itself by that name,
prints, sets torch's global flags on every call (cuDNN determinism and benchmark, TF32, a global
seed), runs ``dvc`` through ``os.system`` and calls ``exit()`` when a file is missing. A
:class:`TreeNamespace` gives each tree a private set of modules and a guarded way to call into it:

* **Modules**: while a call runs, ``sys.modules`` holds this tree's ``src`` package and nothing
  else of that name; before and after, whatever the process had (another tree, a user's own
  ``src``). A finder on ``sys.meta_path`` serves ``src`` from the tree's root only, so the root is
  never put on ``sys.path``; bytecode is not written (the tree may be read-only, and is never
  written to).
* **Process state**: the working directory (a private folder while the call runs), torch's
  thread count, cuDNN and TF32 flags, matmul precision, grad mode and the global random state
  are the same after a call as before; the tree's prints and warnings are swallowed.
* **Exits and commands**: ``SystemExit`` from the tree becomes a :class:`CodecError`;
  ``os.system`` raises instead of running anything.
* One call at a time in a process (the plugin measures images on threads; module swapping is
  process-wide).

* **Native extensions**: each tree's ``ans`` and ``ec_direct`` are loaded from its own files
  under a private module name and placed where the tree imports them. pybind11 keeps one registry
  of C++ types per process (a second ``ANSEncoder`` is refused, and CPython hands back the
  extension it already loaded under that name), so while a tree's extensions initialise, the
  registry pybind11 keeps in the interpreter's state dict is set aside: they get their own, and
  the process's is put back.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import io
import os
import sys
import threading
import warnings

import torch

from .... import CodecError

PACKAGE = "src"
_LOCK = threading.RLock()
_PYBIND11_REGISTRY = "__pybind11_internals"  # the prefix of pybind11's key in the interpreter state dict


def _is_tree_module(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


class _RootFinder(importlib.abc.MetaPathFinder):
    """Finds the top-level ``src`` package in one folder; its submodules follow its ``__path__``."""

    def __init__(self, root: str):
        self.root = root

    def find_spec(self, name, path=None, target=None):
        if name != PACKAGE:
            return None
        return importlib.machinery.PathFinder.find_spec(name, [self.root])


@contextlib.contextmanager
def torch_state_kept():
    """Whatever the code inside does to torch's global settings and random state is undone."""
    cudnn = torch.backends.cudnn
    saved = (
        torch.get_num_threads(),
        cudnn.deterministic,
        cudnn.benchmark,
        cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.get_float32_matmul_precision(),
        torch.is_grad_enabled(),
    )
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            torch.set_num_threads(saved[0])
            cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = saved[1:4]
            torch.backends.cuda.matmul.allow_tf32 = saved[4]
            torch.set_float32_matmul_precision(saved[5])
            torch.set_grad_enabled(saved[6])


def _no_commands(command):
    raise CodecError(f"the JPEG AI tree tried to run a command ({str(command)[:80]!r}); the plugin runs none")


class TreeNamespace:
    """One tree's private modules and the guard every call into the tree runs under."""

    def __init__(self, root: str, workdir: str):
        self.root = os.path.realpath(root)
        self.workdir = workdir
        self.modules: dict = {}
        self._finder = _RootFinder(self.root)

    def _load_extensions(self) -> None:
        """This tree's native extensions, each with a pybind11 registry of its own (see above)."""
        import ctypes
        import hashlib
        import importlib.util

        from .table import EXTENSIONS, extension_paths

        tag = "_nicrobust_jpegai_" + hashlib.sha256(self.root.encode()).hexdigest()[:16]
        api = ctypes.pythonapi
        api.PyInterpreterState_Get.restype = ctypes.c_void_p
        api.PyInterpreterState_GetDict.restype = ctypes.c_void_p  # a borrowed reference:
        api.PyInterpreterState_GetDict.argtypes = [ctypes.c_void_p]  # .value below takes a strong one
        state = ctypes.cast(api.PyInterpreterState_GetDict(api.PyInterpreterState_Get()), ctypes.py_object).value
        for name, path in extension_paths(self.root).items():
            where = f"{PACKAGE}.{EXTENSIONS[name].split('/', 1)[1].replace('/', '.')}.{name}"
            if where in self.modules:
                continue
            private = f"{tag}.{name}"
            module = sys.modules.get(private)
            if module is None:
                kept = {k: state.pop(k) for k in list(state) if isinstance(k, str) and k.startswith(_PYBIND11_REGISTRY)}
                try:
                    loader = importlib.machinery.ExtensionFileLoader(private, path)
                    spec = importlib.util.spec_from_file_location(private, path, loader=loader)
                    module = importlib.util.module_from_spec(spec)
                    loader.exec_module(module)
                except ImportError as exc:
                    raise CodecError(f"cannot load the JPEG AI tree's native extension {path}: {exc}") from None
                finally:
                    for k in [k for k in list(state) if isinstance(k, str) and k.startswith(_PYBIND11_REGISTRY)]:
                        del state[k]
                    state.update(kept)
                sys.modules[private] = module
            self.modules[where] = module

    @contextlib.contextmanager
    def active(self, what: str = "a call"):
        """Run tree code: its modules in place, process state restored, exits contained."""
        with _LOCK:
            others = {k: v for k, v in sys.modules.items() if _is_tree_module(k)}
            for k in others:
                del sys.modules[k]
            sys.modules.update(self.modules)
            sys.meta_path.insert(0, self._finder)
            importlib.invalidate_caches()
            saved_bytecode, saved_system, cwd = sys.dont_write_bytecode, os.system, os.getcwd()
            sys.dont_write_bytecode = True
            os.system = _no_commands
            os.chdir(self.workdir)
            out = io.StringIO()
            try:
                self._load_extensions()
                sys.modules.update(self.modules)
                with torch_state_kept(), contextlib.redirect_stdout(out), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the tree's deprecation warnings are not the user's
                    yield
            except SystemExit as exc:
                raise CodecError(
                    f"the JPEG AI tree at {self.root} exited ({exc.code}) during {what}: "
                    f"{out.getvalue().strip().splitlines()[-1:] or ''}"
                ) from None
            finally:
                os.chdir(cwd)
                os.system = saved_system
                sys.dont_write_bytecode = saved_bytecode
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(self._finder)
                mine = {k: v for k, v in sys.modules.items() if _is_tree_module(k)}
                for k in mine:
                    del sys.modules[k]
                self.modules.update(mine)
                sys.modules.update(others)

    def module(self, name: str):
        """Import ``src.<...>`` of this tree (call inside :meth:`active`)."""
        mod = importlib.import_module(name)
        where = os.path.realpath(getattr(mod, "__file__", "") or "")
        if not where.startswith(self.root + os.sep):
            raise CodecError(f"{name} came from {where}, not from the JPEG AI tree {self.root}")
        return mod
