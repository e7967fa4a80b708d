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
* **Exits**: ``SystemExit`` from the tree becomes a :class:`CodecError`.
* **Processes**: the tree's code starts none. One audit hook (``sys.addaudithook``, installed
  once per process) watches the events of process creation on the thread in a tree call:
  ``subprocess.Popen`` (so ``subprocess.run``, ``call``, ``check_output`` and ``os.popen``),
  ``os.system``, ``os.exec*``, ``os.posix_spawn`` / ``posix_spawnp``, ``os.spawn*`` (``os.spawn`` on
  Windows; on POSIX they fork) and ``os.fork`` / ``os.forkpty`` (so ``pty.fork`` and ``pty.spawn``).
  When the call comes from the tree's code (a file under its root, directly or through the
  standard library or any library it calls) it raises a :class:`CodecError` before anything
  starts, and the tree call fails even if the tree catches that error. A library's own code run
  while it is imported is let through (NumPy's ``numpy.testing`` runs ``lscpu`` on import; the
  README lists what the dependencies start). Not covered: threads the tree starts itself, and
  native code (its extensions, ``ctypes``) calling the C library directly; other threads of the
  process are not touched.
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
import sysconfig
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


# the audit events of process creation (CPython's audit events table), refused on a thread running tree code
PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty"}
)
_IN_TREE = threading.local()  # .depth: tree calls this thread is in; .tried: the first process refused
_GUARD: list = []  # the audit hook, once installed (it cannot be removed)


_STDLIB = tuple(
    os.path.realpath(sysconfig.get_paths()[k]) + os.sep
    for k in ("stdlib", "platstdlib")
    if sysconfig.get_paths().get(k)
)


def _standard_library(path: str) -> bool:
    if path.startswith("<frozen"):
        return True
    path = os.path.realpath(path)
    return path.startswith(_STDLIB) and "-packages" + os.sep not in path


def _from_the_tree(root: str) -> bool:
    """Whether the code starting a process is the tree's: outward from the caller, a frame of a file
    under ``root`` comes before any library's import-time code (a module's top level)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if os.path.realpath(path).startswith(root + os.sep):
            return True
        if frame.f_code.co_name == "<module>" and not _standard_library(path):
            return False  # a library running its own code while it is imported
        frame = frame.f_back
    return False


def _process_guard(event: str, args: tuple) -> None:
    if event not in PROCESS_EVENTS or not getattr(_IN_TREE, "depth", 0) or not _from_the_tree(_IN_TREE.root):
        return
    shown = args[1] if event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn") else args[:1]
    tried = f"{event} {str(shown)[:80]}".rstrip()
    _IN_TREE.tried = getattr(_IN_TREE, "tried", None) or tried
    raise CodecError(f"the JPEG AI tree tried to start a process ({tried}); the plugin starts none")


def _install_process_guard() -> None:
    with _LOCK:
        if not _GUARD:
            sys.addaudithook(_process_guard)
            _GUARD.append(_process_guard)


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
        """Run tree code: its modules in place, process state restored, exits and processes contained."""
        _install_process_guard()
        with _LOCK:
            others = {k: v for k, v in sys.modules.items() if _is_tree_module(k)}
            for k in others:
                del sys.modules[k]
            sys.modules.update(self.modules)
            sys.meta_path.insert(0, self._finder)
            importlib.invalidate_caches()
            saved_bytecode, cwd = sys.dont_write_bytecode, os.getcwd()
            sys.dont_write_bytecode = True
            os.chdir(self.workdir)
            out = io.StringIO()
            depth = getattr(_IN_TREE, "depth", 0)
            if not depth:
                _IN_TREE.tried, _IN_TREE.root = None, self.root
            _IN_TREE.depth = depth + 1
            try:
                self._load_extensions()
                sys.modules.update(self.modules)
                with torch_state_kept(), contextlib.redirect_stdout(out), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the tree's deprecation warnings are not the user's
                    yield
                if not depth and _IN_TREE.tried:  # refused, and the tree carried on as if nothing happened
                    raise CodecError(
                        f"the JPEG AI tree at {self.root} tried to start a process during {what} "
                        f"({_IN_TREE.tried}); the plugin starts none"
                    )
            except SystemExit as exc:
                raise CodecError(
                    f"the JPEG AI tree at {self.root} exited ({exc.code}) during {what}: "
                    f"{out.getvalue().strip().splitlines()[-1:] or ''}"
                ) from None
            finally:
                _IN_TREE.depth = depth
                os.chdir(cwd)
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
