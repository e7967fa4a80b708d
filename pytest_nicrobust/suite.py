"""Suite files: which codecs, attacks, datasets and defenses to combine.

Every combination becomes one :class:`Case` (one pytest item). Errors name the suite
file and the key, and are raised at collection, never inside a run.

.. code-block:: toml

    defenses = ["none"]          # top-level keys come before the tables
    transfer = true              # also test each codec's x' on the others (default true)
    images = 2                   # default image count per dataset (omit: all)
    crop = 128                   # default central crop (omit: full images)

    [[codecs]]
    model = "bmshj2018-hyperprior"
    weights = "nicrobust"        # nicrobust | zoo | random | path/to/ckpt-q{quality}.pth.tar
    qualities = [1, 3]
    # name = "mycodec-v2"        # label in test ids (default: the model name)

    [[attacks]]
    name = "pgd"
    presets = ["eps7"]
    objectives = ["recon_shift"] # each objective is its own test dimension
    # proxy = "noise"            # or "ste"
    # steps = 4                  # any preset parameter may be overridden

    [[datasets]]
    name = "kodak"
    images = 4
    crop = 256
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from itertools import product

from . import NicrobustError
from .attacks.presets import ATTACKS, DEFAULT_OBJECTIVE, PROXIES, parse_objective
from .codecs import ARCHITECTURES, WEIGHT_SOURCES, known_models
from .defenses_registry import DEFENSES


class SuiteError(NicrobustError):
    category = "config error"


@dataclass(frozen=True)
class CodecEntry:
    label: str
    model: str
    weights: str
    quality: int | None


@dataclass(frozen=True)
class AttackEntry:
    name: str
    preset: str
    objective: str
    proxy: str
    overrides: tuple = ()  # sorted (key, value) pairs

    @property
    def params(self) -> dict:
        p = dict(ATTACKS[self.name]["presets"][self.preset])
        p.update(dict(self.overrides))
        return p


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    images: int | None
    crop: int | None
    path: str | None = None
    heavy: bool = False


@dataclass(frozen=True)
class Case:
    suite: str
    codec: CodecEntry
    attack: AttackEntry
    dataset: DatasetEntry
    defense: str
    show_objective: bool = False

    @property
    def name(self) -> str:
        q = "" if self.codec.quality is None else f"[q{self.codec.quality}]"
        tag = self.attack.preset + (f",{self.attack.objective}" if self.show_objective else "")
        return f"{self.codec.label}{q}-{self.attack.name}[{tag}]-{self.dataset.name}-{self.defense}"

    @property
    def model_key(self) -> str:
        """Items with the same key use the same loaded model (xdist group)."""
        return f"{self.codec.label}:{self.codec.weights}:{self.codec.quality}"

    @property
    def parameters(self) -> dict:
        return {
            "codec": self.codec.label,
            "bitrate": "" if self.codec.quality is None else f"q{self.codec.quality}",
            "attack": f"{self.attack.name}[{self.attack.preset}]",
            "objective": self.attack.objective,
            "dataset": self.dataset.name,
            "defense": self.defense,
        }


@dataclass
class Suite:
    path: str
    transfer: bool = True  # also generate the transfer tests (x' of each codec on the others)
    cases: list[Case] = field(default_factory=list)


def _fail(path, key, message):
    raise SuiteError(f"{path}: {key}: {message}")


def _get(table, key, types, path, where, default=None, required=False):
    if key not in table:
        if required:
            _fail(path, where, f"missing required key {key!r}")
        return default
    value = table[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        _fail(path, f"{where}.{key}", f"expected {_typename(types)}, got {value!r}")
    return value


def _typename(types):
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join({int: "an integer", str: "a string", list: "a list", bool: "true/false", dict: "a table"}[t] for t in types)


def _positive(value, path, key):
    if value is not None and value <= 0:
        _fail(path, key, f"must be a positive integer, got {value}")
    return value


def _check_keys(table, allowed, path, where):
    for key in table:
        if key not in allowed:
            _fail(path, f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(allowed))}")


def _parse_spec(table, path, where) -> dict:
    """``"nicrobust:mbt2018-mean@q2"`` -> model, weights and one quality."""
    spec = _get(table, "spec", str, path, where)
    clash = sorted(k for k in ("model", "weights", "qualities") if k in table)
    if clash:
        _fail(path, f"{where}.spec", f"give either spec or {', '.join(clash)}, not both")
    weights, _, rest = spec.partition(":")
    model, _, quality = rest.partition("@q")
    if weights not in WEIGHT_SOURCES or not model or not quality.isdigit():
        _fail(path, f"{where}.spec", f"expected '<{'|'.join(WEIGHT_SOURCES)}>:<model>@q<N>', got {spec!r}")
    return {"model": model, "weights": weights, "qualities": [int(quality)]}


def _parse_codecs(doc, path, base_dir):
    entries = []
    for i, t in enumerate(_get(doc, "codecs", list, path, "codecs", required=True)):
        where = f"codecs[{i}]"
        _check_keys(t, {"spec", "model", "weights", "qualities", "name"}, path, where)
        if "spec" in t:
            t = {**t, **_parse_spec(t, path, where)}
        model = _get(t, "model", str, path, where, required=True)
        if model not in known_models():
            _fail(path, f"{where}.model", f"unknown model {model!r}; known: {', '.join(known_models())}")
        weights = _get(t, "weights", str, path, where, default="nicrobust")
        if model in ARCHITECTURES and weights not in WEIGHT_SOURCES:
            resolved = weights.replace("{quality}", "1")
            if not os.path.isabs(resolved):
                resolved = os.path.join(base_dir, resolved)
            if "{quality}" not in weights and not os.path.exists(resolved):
                _fail(path, f"{where}.weights", f"checkpoint {resolved} does not exist "
                      f"(or use one of {', '.join(WEIGHT_SOURCES)})")
        qualities = _get(t, "qualities", list, path, where, required=model in ARCHITECTURES) or [None]
        for q in qualities:
            if q is not None and (not isinstance(q, int) or isinstance(q, bool) or not 1 <= q <= 8):
                _fail(path, f"{where}.qualities", f"qualities are integers 1..8, got {q!r}")
        # a random-init codec says so in every test id
        label = _get(t, "name", str, path, where, default=f"random-{model}" if weights == "random" else model)
        entries += [CodecEntry(label, model, weights, q) for q in qualities]
    return entries


def _parse_attacks(doc, path):
    entries = []
    for i, t in enumerate(_get(doc, "attacks", list, path, "attacks", required=True)):
        where = f"attacks[{i}]"
        name = _get(t, "name", str, path, where, required=True)
        if name not in ATTACKS:
            _fail(path, f"{where}.name", f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
        spec = ATTACKS[name]
        presets = _get(t, "presets", list, path, where, default=[next(iter(spec["presets"]))])
        for p in presets:
            if p not in spec["presets"]:
                _fail(path, f"{where}.presets", f"unknown preset {p!r} for {name}; choose from {', '.join(spec['presets'])}")
        objectives = _get(t, "objectives", list, path, where, default=[DEFAULT_OBJECTIVE])
        for o in objectives:
            try:
                base, _ = parse_objective(o)
            except (ValueError, AttributeError) as exc:
                _fail(path, f"{where}.objectives", str(exc))
            if base not in spec["objectives"]:
                _fail(path, f"{where}.objectives", f"{name} cannot use objective {base!r}; it supports {', '.join(spec['objectives'])}")
        proxy = _get(t, "proxy", str, path, where, default="noise")
        if proxy not in PROXIES:
            _fail(path, f"{where}.proxy", f"unknown proxy {proxy!r}; choose from {', '.join(PROXIES)}")
        overrides = {k: v for k, v in t.items() if k not in {"name", "presets", "objectives", "proxy"}}
        allowed = set().union(*(spec["presets"][p] for p in presets))
        for key, value in overrides.items():
            if key not in allowed:
                _fail(path, f"{where}.{key}", f"unknown key; {name} presets take {', '.join(sorted(allowed))}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                _fail(path, f"{where}.{key}", f"must be a non-negative number, got {value!r}")
            if key in spec.get("positive", ()) and value <= 0:
                _fail(path, f"{where}.{key}", f"must be > 0, got {value!r}")
        frozen = tuple(sorted(overrides.items()))
        entries += [AttackEntry(name, p, o, proxy, frozen) for p, o in product(presets, objectives)]
    return entries


def _parse_datasets(doc, path, base_dir):
    default_images = _positive(_get(doc, "images", int, path, "images"), path, "images")
    default_crop = _positive(_get(doc, "crop", int, path, "crop"), path, "crop")
    entries = []
    for i, t in enumerate(_get(doc, "datasets", list, path, "datasets", required=True)):
        where = f"datasets[{i}]"
        _check_keys(t, {"name", "images", "crop", "path", "heavy"}, path, where)
        name = _get(t, "name", str, path, where, required=True)
        images = _positive(_get(t, "images", int, path, where, default=default_images), path, f"{where}.images")
        crop = _positive(_get(t, "crop", int, path, where, default=default_crop), path, f"{where}.crop")
        folder = _get(t, "path", str, path, where)
        if folder and not os.path.isabs(folder):
            folder = os.path.normpath(os.path.join(base_dir, folder))
        heavy = _get(t, "heavy", bool, path, where, default=images is None and crop is None)
        entries.append(DatasetEntry(name, images, crop, folder, heavy))
    return entries


def parse_suite(file: str, display: str | None = None) -> Suite:
    """Parse and validate a suite; ``display`` is the name errors use (default: the path)."""
    path = display or file
    try:
        with open(file, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from None
    _check_keys(doc, {"description", "defenses", "images", "crop", "transfer", "codecs", "attacks", "datasets"}, path, "suite")
    codecs = _parse_codecs(doc, path, os.path.dirname(os.path.abspath(file)))
    attacks = _parse_attacks(doc, path)
    datasets = _parse_datasets(doc, path, os.path.dirname(os.path.abspath(file)))
    defenses = _get(doc, "defenses", list, path, "defenses", default=["none"])
    for d in defenses:
        if d not in DEFENSES:
            _fail(path, "defenses", f"unknown defense {d!r}; choose from {', '.join(DEFENSES)}")
    # ids name the objective only where an attack is not run with just the default one
    show_objective = {a.name: {b.objective for b in attacks if b.name == a.name} != {DEFAULT_OBJECTIVE} for a in attacks}
    suite = Suite(file, transfer=_get(doc, "transfer", bool, path, "transfer", default=True))
    for c, a, d, df in product(codecs, attacks, datasets, defenses):
        suite.cases.append(Case(file, c, a, d, df, show_objective[a.name]))
    names = [case.name for case in suite.cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        _fail(path, "codecs", f"two entries give the same test id {dupes[0]}; give one codec a distinct name")
    return suite
