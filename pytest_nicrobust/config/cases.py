"""The kinds of test a suite makes, and the entries they are built from (torch-free).

Every kind answers the same questions, so collection, shards and the run never ask which kind a
test is: ``kind`` (the record's ``kind``), ``name`` (the test id), ``suite``, ``codec``,
``dataset``, ``defense``, ``model_key`` (tests sharing it share a loaded model), ``parameters``
(what thresholds match and baselines key on), ``gated_modes``, ``markers`` and ``cost``.

* :class:`Case`: one (codec, bitrate, attack, dataset, defense) combination;
* :class:`WorstCase`: the per-image worst over a suite's attacks for one (codec, dataset, defense);
* :class:`TransferCase`: x' made for one codec, measured on another codec or a classical one;
* :class:`BitstreamCase`: a codec's decoder on mutated streams (a suite's ``[bitstreams]`` table).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from ..attacks.presets import ATTACKS, NO_OBJECTIVE, PROXIES, query_attack
from ..names import BITSTREAM, CLASSICAL, UNDEFENDED, WORST_CASE, case_id, codec_label, id_token, quality_tag

# The order tests run in: cases and curves first (they attack), then bitstream tests (they need no x'),
# then worst cases (they reuse the cases' rows), then transfer (their x'; many short tests to end the run on).
TEST_KINDS = ("case", "curve", BITSTREAM, "worst-case", "transfer")
DEFENDED_MODES = ("non-adaptive", "adaptive")


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def gated_modes(defense: str) -> tuple[str, ...]:
    """The modes a test with this defense gates: the bare codec, or both defended modes."""
    return (UNDEFENDED,) if defense == "none" else DEFENDED_MODES


@dataclass(frozen=True)
class CodecEntry:
    label: str
    model: str  # built-in model, entry-point name, "module:callable" or a codec kind
    weights: str | None  # nicrobust | zoo | random | absolute path (may hold {quality}) | None
    quality: int | str | None
    options_json: str = "{}"  # further keys of the [[codecs]] table, for an external factory
    home: str = ""  # the suite's folder: an import-path model is also looked for there

    @property
    def display(self) -> str:
        """Label with its quality, e.g. ``bmshj2018-hyperprior[q3]``: what reports and thresholds use."""
        return codec_label(self.label, quality_tag(self.quality))

    @property
    def options(self) -> dict:
        return json.loads(self.options_json)


@dataclass(frozen=True)
class AttackEntry:
    name: str
    preset: str
    objective: str
    proxy: str = "noise"
    overrides: tuple = ()  # sorted (key, value) pairs

    @property
    def params(self) -> dict:
        p = dict(ATTACKS[self.name]["presets"][self.preset])
        p.update(dict(self.overrides))
        return p

    @property
    def setting(self) -> str:
        """The preset and what the suite changed in it: ``eps7``, ``eps7+steps:4+proxy:ste``.

        ``+`` and ``:`` (not ``,`` and ``=``) so that ``-k`` can select any id.
        """
        extra = [f"{k}:{_value_text(v)}" for k, v in self.overrides]
        if self.proxy != PROXIES[0]:
            extra.append(f"proxy:{self.proxy}")
        return "+".join([self.preset] + extra)

    @property
    def label(self) -> str:
        """``pgd[eps7]``, ``pgd[eps7+steps:4]``: in reports and in thresholds' ``attack`` patterns."""
        return f"{self.name}[{self.setting}]"


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    images: int | None
    crop: int | None
    path: str | None = None
    heavy: bool = False

    @property
    def work(self) -> float:
        """Pixels to process in units of 256², a rough size for shard balancing."""
        side = self.crop or 512  # full images: about 512 × 768
        return (self.images or 24) * side * (side if self.crop else 768) / 65536


@dataclass(frozen=True)
class Case:
    suite: str
    codec: CodecEntry
    attack: AttackEntry
    dataset: DatasetEntry
    defense: str

    kind = "case"

    @property
    def attack_id(self) -> str:
        """The parts of the id without the defense: the attack (and its seed) is shared by all defenses."""
        objective = "" if self.attack.objective == NO_OBJECTIVE else f"-{self.attack.objective}"
        return f"{self.attack.name}-{self.attack.setting}{objective}-{self.dataset.name}"

    @property
    def name(self) -> str:
        return case_id(self.codec.label, self.codec.quality, f"{self.attack_id}-{self.defense}")

    @property
    def model_key(self) -> str:
        """Items with the same key use the same loaded model (xdist group)."""
        return f"{self.codec.label}:{self.codec.weights}:{self.codec.quality}"

    @property
    def parameters(self) -> dict:
        return {
            "codec": self.codec.label,
            "bitrate": quality_tag(self.codec.quality),
            "attack": self.attack.label,
            "objective": self.attack.objective,
            "dataset": self.dataset.name,
            "defense": self.defense,
        }

    @property
    def gated_modes(self) -> tuple[str, ...]:
        return gated_modes(self.defense)

    @property
    def markers(self) -> list[str]:
        return [
            f"codec_{self.codec.label}",
            f"attack_{self.attack.name}",
            f"dataset_{self.dataset.name}",
            f"defense_{self.defense}",
            f"objective_{self.attack.objective.replace(':', '_')}",
        ]

    @property
    def cost(self) -> float:
        """Rough work: attack steps × pixels × images (a defense attacks and measures three modes)."""
        modes = 1 if self.defense == "none" else 3
        return max(1, self.attack.params.get("steps", 1)) * modes * self.dataset.work


@dataclass(frozen=True)
class CurveCase:
    """One attack swept over its budget on one codec and data set: damage against budget, and ε*."""

    suite: str
    codec: CodecEntry
    attack: AttackEntry
    dataset: DatasetEntry
    key: str  # the budget key the sweep varies (eps, tau, ...)
    values: tuple  # the budgets, ascending, in the sweep's units (1/255 for L∞ and RMSE budgets)

    kind = "curve"
    defense = "none"
    gated_modes = (UNDEFENDED,)

    @property
    def attack_id(self) -> str:
        return f"{self.attack.name}-{self.attack.setting}-{self.attack.objective}-{self.dataset.name}-sweep-{self.key}"

    @property
    def name(self) -> str:
        return case_id(self.codec.label, self.codec.quality, f"{self.attack_id}-curve")

    @property
    def point(self) -> Case:
        """The undefended case one point of the sweep is: the model it loads and the parameters it shares."""
        return Case(self.suite, self.codec, self.attack, self.dataset, "none")

    @property
    def model_key(self) -> str:
        return self.point.model_key

    @property
    def parameters(self) -> dict:
        return {**self.point.parameters, "sweep": self.key}

    @property
    def markers(self) -> list[str]:
        return ["curve", f"codec_{self.codec.label}", f"attack_{self.attack.name}", f"dataset_{self.dataset.name}"]

    @property
    def cost(self) -> float:
        """A point after the first starts from the previous one's x' (fewer steps, see run.curve)."""
        return (
            max(1, self.attack.params.get("steps", self.attack.params.get("queries", 1)))
            * len(self.values)
            * self.dataset.work
        )


@dataclass(frozen=True)
class WorstCase:
    """The per-image worst over every x' that reached one (codec, dataset, defense) in a suite: its own
    attacks and objectives and, undefended, the x' the other codecs' attacks made (their transfer cells)."""

    members: tuple  # the Cases it takes the worst over
    sources: tuple = ()  # other codecs' undefended Cases whose x' it measures too (with transfer on)

    kind = "worst-case"

    @property
    def suite(self) -> str:
        return self.members[0].suite

    @property
    def codec(self) -> CodecEntry:
        return self.members[0].codec

    @property
    def dataset(self) -> DatasetEntry:
        return self.members[0].dataset

    @property
    def defense(self) -> str:
        return self.members[0].defense

    @property
    def name(self) -> str:
        return case_id(self.codec.label, self.codec.quality, f"{WORST_CASE}-{self.dataset.name}-{self.defense}")

    @property
    def model_key(self) -> str:
        return self.members[0].model_key

    @property
    def gated_modes(self) -> tuple[str, ...]:
        return self.members[0].gated_modes

    @property
    def parameters(self) -> dict:
        return {**self.members[0].parameters, "attack": WORST_CASE, "objective": "all"}

    @property
    def markers(self) -> list[str]:
        return ["worst_case", f"codec_{self.codec.label}", f"dataset_{self.dataset.name}", f"defense_{self.defense}"]

    @property
    def cost(self) -> float:
        return 0.1 * self.dataset.work  # codes and measures; it attacks nothing


@dataclass(frozen=True)
class TransferCase:
    source: Case  # defense "none": x' is made against the bare codec
    target: CodecEntry | str  # a codec of the suite, or a classical codec name

    kind = "transfer"
    defense = "none"
    gated_modes = ("transfer",)

    @property
    def suite(self) -> str:
        return self.source.suite

    @property
    def codec(self) -> CodecEntry:
        return self.source.codec

    @property
    def dataset(self) -> DatasetEntry:
        return self.source.dataset

    @property
    def target_label(self) -> str:
        return self.target if isinstance(self.target, str) else self.target.display

    @property
    def name(self) -> str:
        return case_id(
            self.source.codec.label,
            self.source.codec.quality,
            f"{self.source.attack_id}-transfer-{id_token(self.target_label)}",
        )

    @property
    def model_key(self) -> str:
        return self.source.model_key

    @property
    def parameters(self) -> dict:
        params = {k: v for k, v in self.source.parameters.items() if k != "defense"}
        return {**params, "target": self.target_label}

    @property
    def markers(self) -> list[str]:
        target = self.target if isinstance(self.target, str) else self.target.label
        return ["transfer", f"target_{target}"] + self.source.markers[:3]

    @property
    def cost(self) -> float:
        return 0.1 * self.dataset.work


def transfer_cases(cases: list[Case]) -> list[TransferCase]:
    """Every source (codec, attack, dataset) × every other codec and the classical codecs.

    The diagonal (a codec against itself) is the white-box result of the ``none`` test;
    when the suite has no ``none`` defense, a transfer test computes it. A query attack's x' (a random
    search on its own codec's round trip) is not carried to the others.
    """
    sources = list(dict.fromkeys(replace(c, defense="none") for c in cases if not query_attack(c.attack.name)))
    codecs = list(dict.fromkeys(c.codec for c in cases))
    with_self = not any(c.defense == "none" for c in cases)
    out = []
    for source in sources:
        targets = [t for t in codecs if with_self or t != source.codec] + list(CLASSICAL)
        out += [TransferCase(source, t) for t in targets]
    return out


# -- bitstream tests (docs/bitstreams.md) ------------------------------------------------------


@dataclass(frozen=True)
class BitstreamSettings:
    """A suite's ``[bitstreams]`` table, checked (config/suite.py); defaults in :data:`BITSTREAM_DEFAULTS`."""

    examples: int = 200  # streams Hypothesis builds for one test, over its rounds (shrinking included)
    time_limit: float = 5.0  # seconds one decode may take before it is a hang
    budget: float = 60.0  # seconds of decoding per test; past it no new stream is tried, shrinking ends
    images: int = 2
    crop: int | None = 64
    max_pixels: int | None = None  # the largest image a decoder may return; None: 16 x the largest test image
    classical: tuple = ()  # classical codecs (names.CLASSICAL) whose Pillow decoders are tested too

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


BITSTREAM_DEFAULTS = BitstreamSettings()


@dataclass(frozen=True)
class BitstreamCase:
    """One codec's decoder (a suite codec, or a classical codec's name) on mutated real streams."""

    suite: str
    codec: CodecEntry | str
    dataset: DatasetEntry  # the suite's dataset with the table's images and crop
    settings: BitstreamSettings

    kind = BITSTREAM
    defense = "none"
    gated_modes: tuple = ()

    @property
    def label(self) -> str:
        return self.codec if isinstance(self.codec, str) else self.codec.label

    @property
    def quality(self):
        return None if isinstance(self.codec, str) else self.codec.quality

    @property
    def name(self) -> str:
        return case_id(self.label, self.quality, BITSTREAM)

    @property
    def model_key(self) -> str:
        if isinstance(self.codec, str):
            return f"classical:{self.codec}"
        return f"{self.codec.label}:{self.codec.weights}:{self.codec.quality}"  # as its cases: one loaded model

    @property
    def parameters(self) -> dict:
        return {
            "codec": self.label,
            "bitrate": quality_tag(self.quality),
            "attack": BITSTREAM,
            "objective": NO_OBJECTIVE,
            "dataset": self.dataset.name,
        }

    @property
    def markers(self) -> list[str]:
        return [BITSTREAM, f"codec_{self.label}", f"dataset_{self.dataset.name}"]

    @property
    def cost(self) -> float:
        return 0.02 * self.settings.examples * self.dataset.work


def bitstream_cases(
    suite: str, codecs: list, dataset: DatasetEntry, settings: BitstreamSettings
) -> list[BitstreamCase]:
    """One test per codec and quality of the suite, then one per classical codec asked for."""
    data = replace(dataset, images=settings.images, crop=settings.crop, heavy=False)
    return [BitstreamCase(suite, c, data, settings) for c in [*dict.fromkeys(codecs), *settings.classical]]
