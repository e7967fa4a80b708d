"""A JPEG AI reference-software tree on disk, and a suite's [[codecs]] table that names one (no torch).

What a tree must hold to be coded here, checked at collection so that a suite that cannot run
fails before any test with one line naming the suite file and key:

* the reference software's Python package (``src/reco/coders/encoder.py`` and ``decoder.py``) and
  its configuration (``cfg/info.json``, ``cfg/tools_off.json`` and the profile's file);
* its two native extensions built for this interpreter (``ans`` and ``ec_direct``, each made by
  the Makefile in ``src/codec/entropy_coding/cpp_exts/<mans|direct>``);
* for trained weights, the files of every base model the suite names (its ``models/`` layout:
  ``VM_common_int/{Y,UV}_<beta>.pth``, ``VM_<bop|hop>/encoder_{Y,UV}_<beta>.pth``,
  ``VM_<sop|bop|hop>/decoder_{Y,UV}_<beta>.pth``), fetched: a Git LFS pointer in a file's place is
  named (weights.py). ``weights = "random"`` needs none.

Both lines of the reference software are read: the DIS line names its profiles simple, main and
high, the IS line (``cfg/info.json`` version ``IS``) simple, base and high. A suite's profile is
resolved by its decoder profile id, the place ``cfg/profiles/profiles_list.json`` gives it (the id
every stream carries): ``base`` and ``main`` are id 1 on either line, and the file read is the one
the tree's own list names (:func:`resolve_profile`).

The tree is only read: its version string (``cfg/info.json``), its git commit (read from ``.git``
without running git) and a hash of its code and configuration.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sysconfig
from dataclasses import dataclass

from ...registry import TableError
from .weights import pointer_problem

MODEL = "jpegai"
BETAS = (0.002, 0.012, 0.075, 0.5)  # the base models' rate-distortion trade-offs, tools_0..tools_3
# decoder profile id (a profile's place in cfg/profiles/profiles_list.json, written in every stream)
# -> (operation point, encoder models folder, decoder models folder)
OPERATION_POINTS = {0: ("SOP", "VM_bop", "VM_sop"), 1: ("BOP", "VM_bop", "VM_bop"), 2: ("HOP", "VM_hop", "VM_hop")}
# the words a suite may use: the DIS line calls profile 1 "main", the IS line "base"
PROFILE_IDS = {"simple": 0, "main": 1, "base": 1, "high": 2}
DIS_PROFILE_LIST = ("simple", "main", "high")  # a tree without profiles_list.json
DEFAULT_PROFILE = "main"
PROFILE_CHOICES = "simple (SOP), base or main (BOP), high (HOP)"
KEYS = ("model", "root", "profile", "qualities", "weights", "seed", "hyper_gradient", "gpu")
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


class TreeError(ValueError):
    """What keeps a tree from being coded under a suite's profile, in one phrase (naming the file)."""


@dataclass(frozen=True)
class Profile:
    """A suite's profile resolved in one tree: the file the tree reads and the ids it carries."""

    name: str  # as the suite names it
    decoder_id: int  # decoder_profile_id: its place in profiles_list.json, written in every stream
    file: str  # cfg/profiles/<file>.json: the tree's own name for it
    stream_id: int | None = None  # stream_profile_id (IS line); None where the file states none

    @property
    def operation_point(self) -> str:
        return OPERATION_POINTS[self.decoder_id][0]

    @property
    def path(self) -> str:
        return f"cfg/profiles/{self.file}.json"


def _json(root: str, relative: str) -> dict:
    try:
        with open(os.path.join(root, relative)) as f:
            doc = json.load(f)
    except OSError as exc:
        raise TreeError(f"cannot read {relative} in {root}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise TreeError(f"{relative} in {root} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise TreeError(f"{relative} in {root} is not a JSON object")
    return doc


def profile_list(root: str) -> tuple[str, ...]:
    """The tree's profile names by decoder profile id (cfg/profiles/profiles_list.json; the DIS names without it)."""
    relative = "cfg/profiles/profiles_list.json"
    if not os.path.exists(os.path.join(root, relative)):
        return DIS_PROFILE_LIST
    names = _json(root, relative).get("profiles")
    if not isinstance(names, list) or not all(isinstance(n, str) and n and "/" not in n for n in names):
        raise TreeError(f'{relative} in {root} has no list of profile names under "profiles"')
    return tuple(names)


def resolve_profile(root: str, name: str) -> Profile:
    """The profile a suite names (:data:`PROFILE_IDS`) as this tree has it; :class:`TreeError` says why not."""
    if name not in PROFILE_IDS:
        raise TreeError(f"unknown profile {name!r}; choose from {PROFILE_CHOICES}")
    decoder_id = PROFILE_IDS[name]
    names = profile_list(root)
    if decoder_id >= len(names):
        raise TreeError(
            f"cfg/profiles/profiles_list.json in {root} lists {len(names)} profile(s), none at decoder profile id "
            f"{decoder_id} ({name})"
        )
    profile = Profile(name, decoder_id, names[decoder_id])
    if not os.path.isfile(os.path.join(root, profile.path)):
        raise TreeError(f"{root} is not a JPEG AI reference-software tree (no {profile.path}, profile {decoder_id})")
    doc = _json(root, profile.path)
    stated = doc.get("decoder_profile_id", decoder_id)
    if stated != decoder_id:
        raise TreeError(
            f"{profile.path} in {root} says decoder_profile_id {stated!r}, but profiles_list.json puts it at {decoder_id}"
        )
    stream_id = doc.get("stream_profile_id")
    if stream_id is not None and (isinstance(stream_id, bool) or not isinstance(stream_id, int)):
        raise TreeError(f"{profile.path} in {root}: stream_profile_id is {stream_id!r}, not an integer")
    return Profile(name, decoder_id, profile.file, stream_id)


def tree_problem(root: str) -> str | None:
    """What keeps ``root`` from being coded, in one phrase; None when nothing does."""
    if not os.path.isdir(root):
        return f"{root} is not a folder"
    missing = [f for f in CODE_FILES if not os.path.isfile(os.path.join(root, f))]
    if missing:
        return f"{root} is not a JPEG AI reference-software tree (no {', '.join(missing)})"
    for name, path in extension_paths(root).items():
        if not os.path.isfile(path):
            return (
                f"native extension {name!r} is not built for this Python ({os.path.relpath(path, root)} missing; "
                f"run make in {EXTENSION_SOURCES[name]})"
            )
    return None


def weight_files(decoder_id: int, beta: float) -> list[str]:
    """The weights files (relative to a models folder) one base model needs under decoder profile ``decoder_id``."""
    _, enc, dec = OPERATION_POINTS[decoder_id]
    b = f"{beta:g}"
    return [
        f"VM_common_int/Y_{b}.pth",
        f"VM_common_int/UV_{b}.pth",
        f"{enc}/encoder_Y_{b}.pth",
        f"{enc}/encoder_UV_{b}.pth",
        f"{dec}/decoder_Y_{b}.pth",
        f"{dec}/decoder_UV_{b}.pth",
    ]


def missing_weights(models: str, decoder_id: int, beta: float) -> list[str]:
    return [f for f in weight_files(decoder_id, beta) if not os.path.isfile(os.path.join(models, f))]


def _info(root: str) -> dict:
    try:
        return _json(root, "cfg/info.json")
    except TreeError:
        return {}


def version(root: str) -> str:
    """``codec_name version`` from the tree's cfg/info.json (e.g. ``JAI DIS``, ``JAI IS``), or ``unknown``."""
    info = _info(root)
    return f"{info.get('codec_name', 'JAI')} {info.get('version', 'unknown')}" if info else "unknown"


def line(root: str) -> str:
    """The reference software's line, as its cfg/info.json names it: ``DIS``, ``IS``, ... (or ``unknown``)."""
    return str(_info(root).get("version", "unknown"))


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
    name = table.get("profile", DEFAULT_PROFILE)
    if name not in PROFILE_IDS:
        raise TableError("profile", f"unknown profile {name!r}; choose from {PROFILE_CHOICES}")
    problem = tree_problem(root)
    if problem:
        raise TableError("root", problem)
    try:
        profile = resolve_profile(root, name)
    except TreeError as exc:
        raise TableError("profile", str(exc)) from None
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
    hyper_gradient = table.get("hyper_gradient", True)
    if not isinstance(hyper_gradient, bool):
        raise TableError(
            "hyper_gradient",
            f"true (attacks get a gradient through the integer hyperprior, the default) or false, got {hyper_gradient!r}",
        )
    gpu = table.get("gpu", False)
    if not isinstance(gpu, bool):
        raise TableError(
            "gpu", f"true (the tree runs on the test's GPU when there is one; unmeasured) or false, got {gpu!r}"
        )
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
            missing = missing_weights(models, profile.decoder_id, parse_quality(q))
            if missing:
                pointer = (
                    " (only its .dvc pointer is there: fetch the trained weights)"
                    if os.path.isfile(os.path.join(models, missing[0] + ".dvc"))
                    else ""
                )
                raise TableError(
                    "weights",
                    f"{q} under profile {name!r} needs {len(missing)} missing file(s) in "
                    f'{models}: {", ".join(missing)}{pointer}; or use weights = "random"',
                )
            pointer = pointer_problem(models, weight_files(profile.decoder_id, parse_quality(q)))
            if pointer:
                raise TableError("weights", pointer)
        weights = models
    lacking = missing_dependencies()
    if lacking:
        raise TableError(
            "root",
            f"the tree's Python dependencies are missing here: {', '.join(lacking)} (pip install them; docs/jpegai.md)",
        )
    random = weights == "random"
    options = {"root": root, "profile": name, "hyper_gradient": hyper_gradient, "gpu": gpu}
    if random:
        options["seed"] = seed
    return {
        "weights": weights,
        "qualities": list(qualities),
        "options": options,
        "label": f"random-{MODEL}" if random else MODEL,
    }
