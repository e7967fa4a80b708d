"""Suite files: which codecs, attacks, datasets and defenses to combine.

Every combination becomes one :class:`Case` (one pytest item); every (codec, dataset, defense)
also gets a :class:`WorstCase` item gating the per-image worst over the suite's attacks; with a
``[bitstreams]`` table, every codec and quality also gets a :class:`BitstreamCase` (its decoder on
mutated streams, docs/bitstreams.md). Errors name the suite file and the key, and are raised at
collection, never inside a run.

.. code-block:: toml

    defenses = ["none"]          # top-level keys come before the tables
    transfer = true              # also test each codec's x' on the others (default true)
    worst_case = true            # one worst-case item per (codec, dataset, defense) (default true)
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
    # objectives = ["recon_error"]  # default: the objectives aligned with the gated metrics
    # proxy = "noise"            # or "ste"
    # steps = 4                  # any preset parameter may be overridden (shown in the id)

    [[datasets]]
    name = "kodak"
    images = 4
    crop = 256

    [bitstreams]                 # optional: one decoder test per codec and quality
    examples = 200               # mutated streams per test; time_limit = 5 (s a decode), budget = 60 (s)
    # images = 2, crop = 64, classical = true (also JPEG, WebP, JPEG 2000), max_pixels, dataset
"""

from __future__ import annotations

import bisect
import json
import os
import re
from dataclasses import dataclass, field, replace
from itertools import product

from ..attacks.presets import (
    ALIGNED_ORDER,
    ATTACKS,
    DEFAULT_OBJECTIVE,
    NO_OBJECTIVE,
    PARAMETERS,
    PROXIES,
    check_parameter,
    from_sweep,
    parse_objective,
    sweep_key,
    sweep_unit,
    uses_objective,
    white_box,
)
from ..codecs.registry import (
    ARCHITECTURES,
    WEIGHT_SOURCES,
    TableError,
    codec_kind,
    is_import_path,
    known_models,
    parse_spec,
)
from ..defenses.registry import DEFENSES
from ..metrics.registry import GATE_OBJECTIVES, METRICS, min_side
from ..names import CLASSICAL
from .cases import (
    BITSTREAM_DEFAULTS,
    AttackEntry,
    BitstreamCase,
    BitstreamSettings,
    Case,
    CodecEntry,
    CurveCase,
    DatasetEntry,
    WorstCase,
    bitstream_cases,
)
from .errors import SuiteError, read_toml
from .thresholds import base_metric, match_labels

_LABEL_BAD = re.compile(r"[\s,=()'\"\[\]]|::")


@dataclass
class Suite:
    path: str
    transfer: bool = True  # also generate the transfer tests (x' of each codec on the others)
    worst_case: bool = True  # one worst-case item per (codec, dataset, defense)
    cases: list[Case] = field(default_factory=list)
    curves: list[CurveCase] = field(default_factory=list)  # budget sweeps: one test per codec, attack, objective
    bitstreams: list[BitstreamCase] = field(default_factory=list)  # from a [bitstreams] table

    def worst_cases(self, transfer: bool = True) -> list[WorstCase]:
        """One per (codec, dataset, defense); an undefended one also takes the x' of the other codecs'
        attacks that follow a gradient when transfer is on (a query attack's x' is its own codec's)."""
        if not self.worst_case:
            return []
        groups: dict = {}
        for case in self.cases:
            groups.setdefault((case.codec, case.dataset, case.defense), []).append(case)
        sources = [c for c in dict.fromkeys(replace(c, defense="none") for c in self.cases) if white_box(c.attack.name)]
        out = []
        for (codec, dataset, defense), members in groups.items():
            theirs = (
                [c for c in sources if c.codec != codec and c.dataset == dataset]
                if transfer and defense == "none"
                else []
            )
            out.append(WorstCase(tuple(members), tuple(theirs)))
        return out


def _fail(path, key, message):
    raise SuiteError(f"{path}: {key}: {message}")


def _get(table, key, types, path, where, default=None, required=False):
    """``table[key]`` checked against ``types``; ``where`` is the table's place ("" at the top)."""
    name = f"{where}.{key}" if where else key
    if key not in table:
        if required:
            _fail(path, where or "suite", f"missing required key {key!r}")
        return default
    value = table[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        _fail(path, name, f"expected {_typename(types)}, got {value!r}")
    if isinstance(value, list) and not value:
        _fail(path, name, "must not be empty (leave the key out for the default)")
    return value


def _typename(types):
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(
        {int: "an integer", float: "a number", str: "a string", list: "a list", bool: "true/false", dict: "a table"}[t]
        for t in types
    )


def _positive(value, path, key):
    if value is not None and value <= 0:
        _fail(path, key, f"must be a positive integer, got {value}")
    return value


def _check_keys(table, allowed, path, where):
    for key in table:
        if key not in allowed:
            _fail(path, f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(allowed))}")


_CODEC_KEYS = {"spec", "model", "weights", "qualities", "name"}


def _resolve_weights(weights, base_dir):
    if weights is None or weights in WEIGHT_SOURCES or os.path.isabs(weights):
        return weights
    return os.path.normpath(os.path.join(base_dir, weights))


def _parse_codecs(doc, path, base_dir):
    entries: list[CodecEntry] = []
    starts: list[int] = []  # starts[i]: the first entry table i gave
    for i, t in enumerate(_get(doc, "codecs", list, path, "", required=True)):
        starts.append(len(entries))
        where = f"codecs[{i}]"
        if not isinstance(t, dict):
            _fail(path, where, "expected a [[codecs]] table")
        if "spec" in t:
            clash = sorted(k for k in ("model", "weights", "qualities") if k in t)
            if clash:
                _fail(path, f"{where}.spec", f"give either spec or {', '.join(clash)}, not both")
            try:
                spec = parse_spec(_get(t, "spec", str, path, where), base_dir)
            except ValueError as exc:
                _fail(path, f"{where}.spec", str(exc))
            t = {**{k: v for k, v in t.items() if k != "spec"}, **spec}
        kind = codec_kind("class" if "class" in t else t.get("model"))
        if kind is not None:
            entries += _parse_codec_kind(kind, t, path, where, base_dir)
            continue
        model = _get(t, "model", str, path, where, required=True)
        builtin = model in ARCHITECTURES
        if not builtin and not is_import_path(model) and model not in known_models():
            _fail(
                path,
                f"{where}.model",
                f"unknown model {model!r}; known: {', '.join(known_models())}, "
                "or an import path 'package.module:factory'",
            )
        if builtin:
            _check_keys(t, _CODEC_KEYS, path, where)
        options = {k: v for k, v in t.items() if k not in _CODEC_KEYS}
        weights = _resolve_weights(
            _get(t, "weights", str, path, where, default="nicrobust" if builtin else None), base_dir
        )
        qualities = _get(t, "qualities", list, path, where, required=builtin) or [None]
        if weights is not None and weights not in WEIGHT_SOURCES:  # a factory's too, {quality} filled in alike
            _check_weight_files(weights, qualities, path, where, folder_ok=not builtin)
        for q in qualities:
            if builtin and (not isinstance(q, int) or isinstance(q, bool) or not 1 <= q <= 8):
                _fail(path, f"{where}.qualities", f"qualities of CompressAI models are integers 1..8, got {q!r}")
            if (
                not builtin
                and q is not None
                and (isinstance(q, bool) or not isinstance(q, (int, str)) or _LABEL_BAD.search(str(q)))
            ):
                _fail(
                    path,
                    f"{where}.qualities",
                    f"qualities are integers or strings without spaces, commas or '=', got {q!r}",
                )
        if len(set(qualities)) != len(qualities):
            _fail(path, f"{where}.qualities", f"repeated quality in {qualities}")
        # a random-init codec says so in every test id
        label = _get(t, "name", str, path, where, default=f"random-{model}" if weights == "random" else model)
        if not builtin and "name" not in t:
            label = model.rpartition(":")[2] if is_import_path(model) else model
        _check_label(label, path, where)
        options_json = json.dumps(options, sort_keys=True, default=str)
        entries += [CodecEntry(label, model, weights, q, options_json, base_dir) for q in qualities]
    first: dict = {}  # label[quality] -> the table that gave it
    for k, entry in enumerate(entries):
        i = bisect.bisect_right(starts, k) - 1
        j = first.setdefault(entry.display, i)
        if j != i:
            _fail(path, f"codecs[{i}]", f"gives {entry.display} as codecs[{j}] does: give one a distinct name")
    return entries


def _check_weight_files(weights, qualities, path, where, folder_ok=False):
    """Each quality's checkpoint (``{quality}`` filled in) exists, at collection: a file, or for a
    factory (``folder_ok``) a file or a folder."""
    for q in qualities:
        file = weights.replace("{quality}", str(q))
        which = f" (quality {q!r})" if "{quality}" in weights else ""
        if "{quality}" in weights and q is None:
            _fail(path, f"{where}.weights", "holds {quality} but the table gives no qualities")
        if os.path.isdir(file) and not folder_ok:
            _fail(path, f"{where}.weights", f"{file}{which} is a folder, not a checkpoint file")
        if not (os.path.isfile(file) or (folder_ok and os.path.isdir(file))):
            _fail(
                path,
                f"{where}.weights",
                f"checkpoint {file}{which} does not exist (or use one of {', '.join(WEIGHT_SOURCES)})",
            )


def _check_label(label, path, where):
    if not label or _LABEL_BAD.search(label):
        _fail(
            path,
            f"{where}.name",
            f"{label!r}: a label has no spaces, quotes, commas, brackets, parentheses, '=' or '::'",
        )
    return label


def _parse_codec_kind(kind, t, path, where, base_dir):
    """A [[codecs]] table of a codec kind with keys of its own: the kind checks them (no torch)."""
    name = _get(t, "name", str, path, where)
    try:
        checked = kind.check_table({k: v for k, v in t.items() if k != "name"}, base_dir)
    except TableError as exc:
        _fail(path, f"{where}.{exc.key}", exc.message)
    qualities = checked["qualities"] or [None]
    for q in qualities:
        if q is not None and (isinstance(q, bool) or not isinstance(q, (int, str)) or _LABEL_BAD.search(str(q))):
            _fail(
                path,
                f"{where}.qualities",
                f"qualities are integers or strings without spaces, commas or '=', got {q!r}",
            )
    if len(set(qualities)) != len(qualities):
        _fail(path, f"{where}.qualities", f"repeated quality in {qualities}")
    label = _check_label(name or checked["label"], path, where)
    options_json = json.dumps(checked["options"], sort_keys=True, default=str)
    return [CodecEntry(label, kind.name, checked["weights"], q, options_json, base_dir) for q in qualities]


def _parse_overrides(t, name, presets, path, where):
    spec = ATTACKS[name]
    overrides = {k: v for k, v in t.items() if k not in {"name", "presets", "objectives", "proxy", "sweep"}}
    allowed = set().union(*(spec["presets"][p] for p in presets))
    for key, value in overrides.items():
        if key not in allowed:
            _fail(path, f"{where}.{key}", f"unknown key; {name} presets take {', '.join(sorted(allowed))}")
        wanted = check_parameter(key, value)
        if wanted:
            _fail(path, f"{where}.{key}", f"must be {wanted}, got {value!r}")
    return tuple(sorted((k, int(v) if PARAMETERS[k][1] == "a positive integer" else v) for k, v in overrides.items()))


def _parse_sweep(t, name, path, where):
    """``sweep = { eps = [1, 2, 4, 8, 16] }``: the attack's budget key and its values, ascending, in the
    sweep's units (1/255 for L∞ and RMSE budgets); None without a sweep."""
    sweep = _get(t, "sweep", dict, path, where)
    if sweep is None:
        return None
    key, unit = sweep_key(name), sweep_unit(name)
    if list(sweep) != [key]:
        _fail(path, f"{where}.sweep", f"{name} sweeps its budget {key!r} only, e.g. sweep = {{ {key} = [1, 2, 4, 8] }}")
    values = sweep[key]
    if not isinstance(values, list) or len(values) < 2:
        _fail(path, f"{where}.sweep.{key}", f"expected a list of at least two budgets, got {values!r}")
    for v in values:
        wanted = (
            check_parameter(key, from_sweep(name, v))
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else "a number"
        )
        if wanted:
            _fail(
                path,
                f"{where}.sweep.{key}",
                f"{v!r} is not a budget ({unit or 'as the preset writes it'}): must be {wanted}",
            )
    if any(b <= a for a, b in zip(values, values[1:])):
        _fail(path, f"{where}.sweep.{key}", f"budgets must rise, got {values}")
    return key, tuple(float(v) for v in values)


def _parse_attacks(doc, path):
    """[(name, preset, objectives or None for the gate-aligned set, proxy, overrides, sweep or None)];
    an attack that an earlier table already gives (the same preset, objective, proxy, parameters and
    sweep) is refused, naming both tables."""
    specs = []
    seen: dict = {}  # (name, preset, objective or None, proxy, overrides, sweep) -> the table that gave it
    for i, t in enumerate(_get(doc, "attacks", list, path, "", required=True)):
        where = f"attacks[{i}]"
        name = _get(t, "name", str, path, where, required=True)
        if name not in ATTACKS:
            _fail(path, f"{where}.name", f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
        presets = _get(t, "presets", list, path, where, default=[next(iter(ATTACKS[name]["presets"]))])
        for p in presets:
            if p not in ATTACKS[name]["presets"]:
                _fail(
                    path,
                    f"{where}.presets",
                    f"unknown preset {p!r} for {name}; choose from {', '.join(ATTACKS[name]['presets'])}",
                )
        objectives = _get(t, "objectives", list, path, where)
        if not uses_objective(name):
            if objectives is not None:
                _fail(path, f"{where}.objectives", f"{name} ignores the codec, so it takes no objectives")
            objectives = [NO_OBJECTIVE]
        for o in objectives or ():
            if o == NO_OBJECTIVE:
                continue
            try:
                parse_objective(o if isinstance(o, str) else repr(o))
            except ValueError as exc:
                _fail(path, f"{where}.objectives", str(exc))
        if objectives is not None and len(set(objectives)) != len(objectives):
            _fail(path, f"{where}.objectives", f"repeated objective in {objectives}")
        proxy = _get(t, "proxy", str, path, where, default=PROXIES[0])
        if proxy not in PROXIES:
            _fail(path, f"{where}.proxy", f"unknown proxy {proxy!r}; choose from {', '.join(PROXIES)}")
        overrides = _parse_overrides(t, name, presets, path, where)
        sweep = _parse_sweep(t, name, path, where)
        if sweep and sweep[0] in dict(overrides):
            _fail(path, f"{where}.{sweep[0]}", f"give {sweep[0]} in the sweep or as a setting, not both")
        for p in presets:
            for o in objectives or [None]:
                first = seen.setdefault((name, p, o, proxy, overrides, sweep), i)
                if first != i:
                    what = f"{name} {p}" + (f", objective {o}" if o not in (None, NO_OBJECTIVE) else "")
                    _fail(path, where, f"the same attack as attacks[{first}] ({what}): remove one of the two tables")
        specs += [(name, p, objectives, proxy, overrides, sweep) for p in presets]
    return specs


def _parse_datasets(doc, path, base_dir, metrics):
    default_images = _positive(_get(doc, "images", int, path, ""), path, "images")
    default_crop = _positive(_get(doc, "crop", int, path, ""), path, "crop")
    side, metric = min_side(metrics)
    entries: list[DatasetEntry] = []
    for i, t in enumerate(_get(doc, "datasets", list, path, "", required=True)):
        where = f"datasets[{i}]"
        _check_keys(t, {"name", "images", "crop", "path", "heavy"}, path, where)
        name = _get(t, "name", str, path, where, required=True)
        if not name or _LABEL_BAD.search(name):  # it becomes part of every test id and label
            _fail(
                path,
                f"{where}.name",
                f"{name!r}: a dataset name has no spaces, quotes, commas, brackets, "
                "parentheses, '=' or '::' (it is part of every test id)",
            )
        images = _positive(_get(t, "images", int, path, where, default=default_images), path, f"{where}.images")
        crop = _positive(_get(t, "crop", int, path, where, default=default_crop), path, f"{where}.crop")
        if crop is not None and crop < side:
            _fail(
                path,
                f"{where}.crop" if "crop" in t else "crop",
                f"{crop} px is too small for {metric} (it needs images of at least {side}x{side})",
            )
        folder = _get(t, "path", str, path, where)
        if folder and not os.path.isabs(folder):
            folder = os.path.normpath(os.path.join(base_dir, folder))
        if folder and not os.path.isdir(folder):  # at collection, not once per test at run time
            _fail(path, f"{where}.path", f"folder {folder} does not exist")
        heavy = _get(t, "heavy", bool, path, where, default=images is None and crop is None)
        twin = next((j for j, e in enumerate(entries) if e.name == name), None)
        if twin is not None:
            _fail(path, f"{where}.name", f"datasets[{twin}] is named {name!r} too: give one another name")
        entries.append(DatasetEntry(name, images, crop, folder, heavy))
    return entries


def aligned_objectives(params: dict, modes, thresholds, metrics) -> list[str]:
    """The objectives aligned with the metrics gated for a case (docs/attacks.md), in ALIGNED_ORDER.

    An objective runs when, for a test with that objective, a limit applies to a metric it is
    aligned with; with nothing gated the default (ΔPSNR's) still runs, and reports "no limit".
    """
    chosen = []
    for objective in ALIGNED_ORDER:
        labels = [match_labels({**params, "objective": objective}, mode) for mode in modes]
        gated = {m for lab in labels for m in thresholds.limits_for(lab)}
        if any(GATE_OBJECTIVES.get(m) == objective and base_metric(m) in metrics + (None,) for m in gated):
            chosen.append(objective)
    return chosen or [DEFAULT_OBJECTIVE]


def _parse_bitstreams(doc, path, file, codecs, datasets) -> list[BitstreamCase]:
    """The ``[bitstreams]`` table: one decoder test per codec and quality (and classical codec asked for)."""
    t = _get(doc, "bitstreams", dict, path, "")
    where, d = "bitstreams", BITSTREAM_DEFAULTS
    _check_keys(
        t, {"examples", "time_limit", "budget", "images", "crop", "max_pixels", "classical", "dataset"}, path, where
    )

    def positive(key, types, default):
        value = _get(t, key, types, path, where, default=default)
        if value is not None and value <= 0:
            _fail(path, f"{where}.{key}", f"must be positive, got {value}")
        return value

    classical = _get(t, "classical", (bool, list), path, where, default=False)
    names = list(CLASSICAL) if classical is True else [] if classical is False else classical
    for name in names:
        if name not in CLASSICAL:
            _fail(path, f"{where}.classical", f"unknown classical codec {name!r}; choose from {', '.join(CLASSICAL)}")
    settings = BitstreamSettings(
        examples=positive("examples", int, d.examples),
        time_limit=float(positive("time_limit", (int, float), d.time_limit)),
        budget=float(positive("budget", (int, float), d.budget)),
        images=positive("images", int, d.images),
        crop=positive("crop", int, d.crop),
        max_pixels=positive("max_pixels", int, d.max_pixels),
        classical=tuple(dict.fromkeys(names)),
    )
    wanted = _get(t, "dataset", str, path, where, default=datasets[0].name)
    found = [e for e in datasets if e.name == wanted]
    if not found:
        _fail(
            path,
            f"{where}.dataset",
            f"{wanted!r} is not a dataset of this suite ({', '.join(e.name for e in datasets)})",
        )
    dataset = found[0]
    return bitstream_cases(file, codecs, dataset, settings)


def parse_suite(file: str, display: str | None = None, thresholds=None, metrics=METRICS) -> Suite:
    """Parse and validate a suite; ``display`` is the name errors use (default: the path).

    ``thresholds`` (a :class:`~pytest_nicrobust.config.thresholds.Thresholds`) decides the objectives of
    attacks that name none; ``metrics`` the smallest crop allowed.
    """
    path = display or file
    doc = read_toml(file, path, SuiteError)
    _check_keys(
        doc,
        {
            "description",
            "defenses",
            "images",
            "crop",
            "transfer",
            "worst_case",
            "codecs",
            "attacks",
            "datasets",
            "bitstreams",
        },
        path,
        "suite",
    )
    base_dir = os.path.dirname(os.path.abspath(file))
    codecs = _parse_codecs(doc, path, base_dir)
    attacks = _parse_attacks(doc, path)
    datasets = _parse_datasets(doc, path, base_dir, tuple(metrics))
    defenses = _get(doc, "defenses", list, path, "", default=["none"])
    for d in defenses:
        if d not in DEFENSES:
            _fail(path, "defenses", f"unknown defense {d!r}; choose from {', '.join(DEFENSES)}")
    suite = Suite(
        file,
        transfer=_get(doc, "transfer", bool, path, "", default=True),
        worst_case=_get(doc, "worst_case", bool, path, "", default=True),
    )
    for c, (name, preset, objectives, proxy, overrides, sweep), d, df in product(codecs, attacks, datasets, defenses):
        if sweep and df != "none":
            continue  # a curve measures the bare codec
        probe = Case(file, c, AttackEntry(name, preset, DEFAULT_OBJECTIVE, proxy, overrides), d, df)
        if objectives is not None:
            chosen = objectives
        elif thresholds is None:
            chosen = [DEFAULT_OBJECTIVE]
        else:
            chosen = aligned_objectives(probe.parameters, probe.gated_modes, thresholds, tuple(metrics))
        for o in chosen:
            entry = AttackEntry(name, preset, o, proxy, overrides)
            if sweep:
                suite.curves.append(CurveCase(file, c, entry, d, *sweep))
            else:
                suite.cases.append(Case(file, c, entry, d, df))
    if "bitstreams" in doc:
        suite.bitstreams = _parse_bitstreams(doc, path, file, codecs, datasets)
    names = [case.name for case in suite.cases + suite.curves]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        _fail(path, "attacks", f"two tables give the same test {dupes[0]}: an attack and objective given twice")
    return suite
