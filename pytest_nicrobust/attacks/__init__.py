"""White-box attacks on image codecs, torchattacks-style.

>>> from pytest_nicrobust.attacks import PGD
>>> attack = PGD(codec, eps=7/255, alpha=2/255, steps=12, objective="recon_error", seed=0)
>>> x_adv = attack(x)          # x: (N,3,H,W) in [0,1]

Classes are imported lazily so that importing this package (the plugin does, at
collection) costs no torch import.
"""

import importlib

from .presets import ATTACKS, DEFAULT_OBJECTIVE, NO_OBJECTIVE, OBJECTIVES, parse_objective

__all__ = ["ATTACKS", "OBJECTIVES", "DEFAULT_OBJECTIVE", "parse_objective", "attack_class", "build_attack"]


def attack_class(name: str):
    spec = ATTACKS[name]
    return getattr(importlib.import_module(f"{__name__}.{spec['module']}"), spec["class"])


def build_attack(name: str, codec, preset: str, objective: str, seed: int, proxy: str = "noise", overrides=None):
    params = dict(ATTACKS[name]["presets"][preset])
    params.update(overrides or {})
    if objective == NO_OBJECTIVE:  # an attack that ignores the codec (noise)
        objective = DEFAULT_OBJECTIVE
    return attack_class(name)(codec, objective=objective, proxy=proxy, seed=seed, **params)


def __getattr__(attr):
    for name, spec in ATTACKS.items():
        if spec["class"] == attr:
            return attack_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
