"""A JPEG AI reference-software tree on disk, and a suite's [[codecs]] table that names one (no torch).

What a tree must hold to be coded here, checked at collection so that a suite that cannot run
fails before any test with one line naming the suite file and key:

* the reference software's Python package (``src/reco/coders/encoder.py`` and ``decoder.py``) and
  its configuration (``cfg/info.json``, ``cfg/tools_off.json``, ``cfg/profiles/<profile>.json``);
* its two native extensions built for this interpreter (``ans`` and ``ec_direct``, each made by
  the Makefile in ``src/codec/entropy_coding/cpp_exts/<mans|direct>``);
* for trained weights, the files of every base model the suite names (its ``models/`` layout:
  ``VM_common_int/{Y,UV}_<beta>.pth``, ``VM_<bop|hop>/encoder_{Y,UV}_<beta>.pth``,
  ``VM_<sop|bop|hop>/decoder_{Y,UV}_<beta>.pth``). ``weights = "random"`` needs none.

The tree is only read: its version string (``cfg/info.json``), its git commit (read from ``.git``
without running git) and a hash of its code and configuration.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sysconfig

from ...registry import TableError

MODEL = "jpegai"
BETAS = (0.002, 0.012, 0.075, 0.5)  # the base models' rate-distortion trade-offs, tools_0..tools_3
# profile -> (operation point, encoder models folder, decoder models folder)
PROFILES = {
    "simple": ("SOP", "VM_bop", "VM_sop"),
    "main": ("BOP", "VM_bop", "VM_bop"),
    "high": ("HOP", "VM_hop", "VM_hop"),
}
DEFAULT_PROFILE = "main"
KEYS = ("model", "root", "profile", "qualities", "weights", "seed")
CODE_FILES = (
    "src/reco/coders/encoder.py",
    "src/reco/coders/decoder.py",
    "src/codec/__init__.py",
    "cfg/info.json",
    "cfg/tools_off.json",
)
EXTENSIONS = {
    "ans": "src/codec/entropy_coding/lib_wrappers/mans",
    "ec_direct": "src/codec/entropy_coding/lib_wrappers/direct",
}
EXTENSION_SOURCES = {
    "ans": "src/codec/entropy_coding/cpp_exts/mans",
    "ec_direct": "src/codec/entropy_coding/cpp_exts/direct",
}

# Python packages the tree imports on the encode/decode path beside torch and numpy, as their
# import names (the pip names that worked with torch 2.14.1 are in docs/jpegai.md).
DEPENDENCIES = {
    "cv2": "opencv-python-headless<4.11",
    "GPUtil": "GPUtil",
    "addict": "addict",
    "commentjson": "commentjson",
    "ptflops": "ptflops",
    "prettytable": "prettytable",
    "pynvml": "pynvml==8.0.4",
    "einops": "einops",
    "scipy": "scipy",
    "pandas": "pandas",
    "psutil": "psutil",
    "pytorch_msssim": "pytorch-msssim",
}


def missing_dependencies() -> list[str]:
    """The tree's Python packages this environment lacks (pip names); found without importing them."""
    return [pip for name, pip in DEPENDENCIES.items() if importlib.util.find_spec(name) is None]


def quality_tag(beta: float) -> str:
    return f"b{beta:g}"


def parse_quality(q) -> float | None:
    """``"b0.012"`` -> 0.012 when it is one of :data:`BETAS`, else None."""
    if not isinstance(q, str) or not q.startswith("b"):
        return None
    try:
        beta = float(q[1:])
    except ValueError:
        return None
    return beta if beta in BETAS else None


def extension_paths(root: str) -> dict[str, str]:
    """The built extension files this interpreter imports, by name (they may not exist)."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return {name: os.path.join(root, folder, name + suffix) for name, folder in EXTENSIONS.items()}


def tree_problem(root: str, profile: str = DEFAULT_PROFILE) -> str | None:
    """What keeps ``root`` from being coded, in one phrase; None when nothing does."""
    if not os.path.isdir(root):
        return f"{root} is not a folder"
    missing = [f for f in CODE_FILES + (f"cfg/profiles/{profile}.json",) if not os.path.isfile(os.path.join(root, f))]
    if missing:
        return f"{root} is not a JPEG AI reference-software tree (no {', '.join(missing)})"
    for name, path in extension_paths(root).items():
        if not os.path.isfile(path):
            return (
                f"native extension {name!r} is not built for this Python ({os.path.relpath(path, root)} missing; "
                f"run make in {EXTENSION_SOURCES[name]})"
            )
    return None


def weight_files(profile: str, beta: float) -> list[str]:
    """The weights files (relative to a models folder) one base model needs under ``profile``."""
    _, enc, dec = PROFILES[profile]
    b = f"{beta:g}"
    return [
        f"VM_common_int/Y_{b}.pth",
        f"VM_common_int/UV_{b}.pth",
        f"{enc}/encoder_Y_{b}.pth",
        f"{enc}/encoder_UV_{b}.pth",
        f"{dec}/decoder_Y_{b}.pth",
        f"{dec}/decoder_UV_{b}.pth",
    ]


def missing_weights(models: str, profile: str, beta: float) -> list[str]:
    return [f for f in weight_files(profile, beta) if not os.path.isfile(os.path.join(models, f))]


def version(root: str) -> str:
    """``codec_name version`` from the tree's cfg/info.json (e.g. ``JAI DIS``), or ``unknown``."""
    try:
        with open(os.path.join(root, "cfg", "info.json")) as f:
            info = json.load(f)
        return f"{info.get('codec_name', 'JAI')} {info.get('version', 'unknown')}"
    except (OSError, ValueError):
        return "unknown"


def git_commit(root: str) -> str | None:
    """The commit the tree's checkout stands on, read from its .git folder (no git process)."""
    git = os.path.join(root, ".git")
    try:
        if os.path.isfile(git):  # a worktree or submodule: "gitdir: <path>"
            with open(git) as f:
                git = os.path.join(root, f.read().split(":", 1)[1].strip())
        with open(os.path.join(git, "HEAD")) as f:
            head = f.read().strip()
        if not head.startswith("ref:"):
            return head
        ref = head[4:].strip()
        if os.path.isfile(os.path.join(git, ref)):
            with open(os.path.join(git, ref)) as f:
                return f.read().strip()
        with open(os.path.join(git, "packed-refs")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except (OSError, IndexError):
        return None
    return None


def code_digest(root: str) -> str:
    """SHA-256 over the tree's Python code and configuration (src/**/*.py, cfg/**/*.json), path by path."""
    h = hashlib.sha256()
    for top, exts in (("src", (".py",)), ("cfg", (".json",))):
        for folder, dirs, files in sorted(os.walk(os.path.join(root, top))):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(exts):
                    path = os.path.join(folder, name)
                    h.update(os.path.relpath(path, root).encode() + b"\0")
                    with open(path, "rb") as f:
                        h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def models_folder(weights: str | None, root: str, base_dir: str) -> str:
    """Where the weights files are: the tree's models/ (default), or a folder in the same layout."""
    if weights in (None, "models"):
        return os.path.join(root, "models")
    path = os.path.expanduser(weights)
    return path if os.path.isabs(path) else os.path.abspath(os.path.join(base_dir, path))


def check_table(table: dict, base_dir: str) -> dict:
    """The codec-kind hook (see codecs/registry.py): check a [[codecs]] table naming JPEG AI."""
    unknown = sorted(k for k in table if k not in KEYS)
    if unknown:
        raise TableError(unknown[0], f"unknown key for model {MODEL!r}; it takes {', '.join(KEYS[1:])} and name")
    root = table.get("root")
    if not isinstance(root, str) or not root:
        raise TableError("root", 'give the folder of your JPEG AI reference-software tree (root = "...")')
    root = os.path.expanduser(root)
    root = os.path.realpath(root if os.path.isabs(root) else os.path.join(base_dir, root))
    profile = table.get("profile", DEFAULT_PROFILE)
    if profile not in PROFILES:
        raise TableError(
            "profile",
            f"unknown profile {profile!r}; choose from " + ", ".join(f"{p} ({PROFILES[p][0]})" for p in PROFILES),
        )
    problem = tree_problem(root, profile)
    if problem:
        raise TableError("root", problem)
    qualities = table.get("qualities")
    if not isinstance(qualities, list) or not qualities:
        raise TableError(
            "qualities",
            'give the base models to code with, e.g. qualities = ["b0.012", "b0.075"] '
            f"(betas {', '.join(quality_tag(b) for b in BETAS)})",
        )
    for q in qualities:
        if parse_quality(q) is None:
            raise TableError(
                "qualities",
                f"{q!r} is not a base model of JPEG AI; choose from {', '.join(quality_tag(b) for b in BETAS)}",
            )
    seed = table.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TableError("seed", f"the seed of random weights is a non-negative integer, got {seed!r}")
    weights = table.get("weights", "models")
    if not isinstance(weights, str) or not weights:
        raise TableError(
            "weights", f'expected "models", "random" or a folder in the tree\'s models/ layout, got {weights!r}'
        )
    if weights != "random":
        models = models_folder(weights, root, base_dir)
        if not os.path.isdir(models):
            raise TableError("weights", f'weights folder {models} does not exist (or use weights = "random")')
        for q in qualities:
            missing = missing_weights(models, profile, parse_quality(q))
            if missing:
                pointer = (
                    " (only its .dvc pointer is there: fetch the trained weights)"
                    if os.path.isfile(os.path.join(models, missing[0] + ".dvc"))
                    else ""
                )
                raise TableError(
                    "weights",
                    f"{q} under profile {profile!r} needs {len(missing)} missing file(s) in "
                    f'{models}: {", ".join(missing)}{pointer}; or use weights = "random"',
                )
        weights = models
    lacking = missing_dependencies()
    if lacking:
        raise TableError(
            "root",
            f"the tree's Python dependencies are missing here: {', '.join(lacking)} (pip install them; docs/jpegai.md)",
        )
    random = weights == "random"
    options = {"root": root, "profile": profile}
    if random:
        options["seed"] = seed
    return {
        "weights": weights,
        "qualities": list(qualities),
        "options": options,
        "label": f"random-{MODEL}" if random else MODEL,
    }
