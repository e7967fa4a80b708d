"""Attack registry and named presets (pure data: read at collection, no torch).

Keys per attack: module, class, paper, presets, ``budget`` (the kind of budget and the preset key
that holds it: attacks of one kind and value are compared by the gradient-masking checks and swept
by curves), ``gradient`` (False for the attacks that never differentiate the codec: the noise
baseline and the query attack) and optionally ``uses_objective = False`` (the noise baseline: it
ignores the codec, so one test, not one per objective).

Budgets follow the paper (arXiv 2411.11795) and NIC-RobustBench's published presets. A suite entry may
override any preset parameter by name (``steps = 2`` for a quick run); :data:`PARAMETERS`
says what each parameter accepts, so a budget such as ``eps = 1000`` is refused at collection.
"""

from typing import Any

OBJECTIVES = (
    "recon_shift",
    "recon_error",
    "source_error",
    "amplify",
    "msssim_shift",
    "msssim_error",
    "bitrate",
)
COLOR_SPACES = ("rgb", "ycbcr", "luma")
USES_REFERENCE = ("recon_shift", "amplify", "msssim_shift")  # objectives that compare with C(x)
PROXIES = ("noise", "ste")

_LINF = {
    "eps7": {"eps": 7 / 255, "alpha": 2 / 255, "steps": 12},
    "eps5": {"eps": 5 / 255, "alpha": 2 / 255, "steps": 12},
    "eps7-fine": {"eps": 7 / 255, "alpha": 1 / 255, "steps": 24},
    "eps3": {"eps": 3 / 255, "alpha": 1 / 255, "steps": 12},
}

ATTACKS: dict[str, dict[str, Any]] = {
    "ifgsm": {
        "module": "ifgsm",
        "class": "IFGSM",
        "paper": "Kurakin et al. 2017",
        "budget": ("linf", "eps"),
        "gradient": True,
        "presets": _LINF,
    },
    "pgd": {
        "module": "pgd",
        "class": "PGD",
        "paper": "Madry et al. 2018",
        "budget": ("linf", "eps"),
        "gradient": True,
        "presets": _LINF,
    },
    # Croce & Hein's step-size schedule and momentum; alpha of the L-inf presets is ignored (see apgd.py)
    "apgd": {
        "module": "apgd",
        "class": "APGD",
        "paper": "Croce & Hein, ICML 2020",
        "budget": ("linf", "eps"),
        "gradient": True,
        "presets": _LINF,
    },
    # gradient-free: random search over the L-inf ball's corners, queries to the real round trip
    "square": {
        "module": "square",
        "class": "Square",
        "paper": "Andriushchenko et al., ECCV 2020",
        "budget": ("linf", "eps"),
        "gradient": False,
        "presets": {
            "eps7": {"eps": 7 / 255, "queries": 30},
            "eps5": {"eps": 5 / 255, "queries": 30},
            "eps7-q1000": {"eps": 7 / 255, "queries": 1000},
        },
    },
    # MSE budget tau on x' - x; lr in units of sqrt(tau) (see ftda.py)
    "ftda": {
        "module": "ftda",
        "class": "FTDA",
        "paper": "Chen & Ma, TCSVT 2023",
        "budget": ("mse", "tau"),
        "gradient": True,
        "presets": {
            "tau6e-4": {"tau": 6e-4, "lr": 0.2, "steps": 100},
            "tau3e-4": {"tau": 3e-4, "lr": 0.15, "steps": 100},
            "tau6e-4-lr0.1": {"tau": 6e-4, "lr": 0.1, "steps": 100},
        },
    },
    # proxy RMSE held at eps (not the toolkit's invisible 6e-4: see madc.py)
    "madc": {
        "module": "madc",
        "class": "MADC",
        "paper": "Wang & Simoncelli 2008",
        "budget": ("rmse", "eps"),
        "gradient": True,
        "presets": {
            "rmse7": {"eps": 7 / 255, "alpha": 2 / 255, "steps": 25},
            "rmse5": {"eps": 5 / 255, "alpha": 1.5 / 255, "steps": 25},
            "rmse7-30": {"eps": 7 / 255, "alpha": 2 / 255, "steps": 30},
        },
    },
    "madc-linf": {
        "module": "madc",
        "class": "MADCLinf",
        "paper": "Wang & Simoncelli 2008",
        "budget": ("linf", "eps"),
        "gradient": True,
        "presets": {
            "eps7": {"eps": 7 / 255, "alpha": 1 / 255, "steps": 30},
            "eps5": {"eps": 5 / 255, "alpha": 1 / 255, "steps": 30},
        },
    },
    # soft LL-band penalty plus a hard L-inf cap eps (see ssah.py)
    "ssah": {
        "module": "ssah",
        "class": "SSAH",
        "paper": "Luo et al., CVPR 2022",
        "budget": ("linf", "eps"),
        "gradient": True,
        "presets": {
            "lr0.2": {"lr": 0.2, "lambda_lf": 0.1, "steps": 50, "eps": 8 / 255},
            "lr0.15-lf0.2": {"lr": 0.15, "lambda_lf": 0.2, "steps": 50, "eps": 8 / 255},
            "lr0.01": {"lr": 0.01, "lambda_lf": 0.1, "steps": 60, "eps": 8 / 255},
            "eps12": {"lr": 0.2, "lambda_lf": 0.1, "steps": 50, "eps": 12 / 255},
        },
    },
    # luma kept; chroma moved through k-means-placed hints, each capped at chroma_eps
    "cadv": {
        "module": "cadv",
        "class": "CAdv",
        "paper": "Bhattad et al., ICLR 2020",
        "budget": ("chroma", "chroma_eps"),
        "gradient": True,
        "presets": {
            "default": {"lr": 0.005, "steps": 50, "chroma_eps": 0.1},
            "fast": {"lr": 0.01, "steps": 30, "chroma_eps": 0.1},
            "wide": {"lr": 0.01, "steps": 50, "chroma_eps": 0.2},
        },
    },
    # baseline: Gaussian noise clipped to the L-inf ball; accepts and ignores every objective
    "noise": {
        "module": "noise",
        "class": "GaussianNoise",
        "paper": "baseline (NIC-RobustBench random-noise)",
        "budget": ("linf", "eps"),
        "gradient": False,
        "uses_objective": False,
        "presets": {
            "eps7": {"eps": 7 / 255, "sigma": 7 / 255},
            "eps5": {"eps": 5 / 255, "sigma": 5 / 255},
            "eps7-sigma14": {"eps": 7 / 255, "sigma": 14 / 255},
            "eps5-sigma10": {"eps": 5 / 255, "sigma": 10 / 255},
        },
    },
}

# The sanity check of the gradient-masking checks (verdict/masking.py): a white-box attack without a budget
# (PGD with eps = 1, five steps of 0.1) must wreck the reconstruction. On the shipped codecs at 256² it drives
# PSNR(x', C(x')) to 6.4 dB, where a uniform-noise image gets 11.1 dB.
UNBOUNDED = ("pgd", "eps7", {"eps": 1.0, "alpha": 0.1, "steps": 5})

# A suite naming no objectives runs, in this order, those aligned with the metrics it gates.
ALIGNED_ORDER = ("recon_error", "msssim_error", "bitrate", "recon_shift", "msssim_shift")
DEFAULT_OBJECTIVE = "recon_error"  # aligned with ΔPSNR, the headline gate
NO_OBJECTIVE = "none"  # the objective label of an attack that uses none (noise)

# What a suite may set a preset parameter to: (test, description for the error message).
_BUDGET = (lambda v: 0 < v <= 1, "a budget in (0, 1] on the [0, 1] pixel scale")
_POSITIVE = (lambda v: v > 0, "a number > 0")
_NON_NEGATIVE = (lambda v: v >= 0, "a number >= 0")
_COUNT = (lambda v: float(v).is_integer() and v >= 1, "a positive integer")
PARAMETERS = {
    "eps": _BUDGET,
    "tau": _BUDGET,
    "chroma_eps": _BUDGET,
    "alpha": _POSITIVE,
    "lr": _POSITIVE,
    "steps": _COUNT,
    "clusters": _COUNT,
    "hints": _COUNT,
    "lambda_lf": _NON_NEGATIVE,
    "sigma": _NON_NEGATIVE,
    "init_std": _NON_NEGATIVE,
    "quantize": (lambda v: v in (0, 1), "0 or 1"),
    "queries": _COUNT,
    "p_init": (lambda v: 0 < v <= 1, "a share in (0, 1]"),
    "momentum": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "rho": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
}


def check_parameter(key: str, value) -> str | None:
    """None when ``value`` is acceptable for ``key``, else what it should be."""
    test, wanted = PARAMETERS[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or not test(value):
        return wanted
    return None


def uses_objective(attack: str) -> bool:
    return ATTACKS[attack].get("uses_objective", True)


def white_box(attack: str) -> bool:
    """Whether the attack follows the codec's gradient (the ones a masked gradient can mislead)."""
    return bool(ATTACKS[attack]["gradient"])


def query_attack(attack: str) -> bool:
    """Whether the attack searches without gradients by querying its codec's real round trip (Square)."""
    return not white_box(attack) and uses_objective(attack)


# A budget sweep (``sweep = { eps = [1, 2, 4, 8, 16] }``) is written in these units per budget kind: L∞ and
# RMSE budgets in 1/255 steps of the pixel scale, τ (an MSE) and the chroma cap as the preset writes them.
SWEEP_SCALE = {"linf": 255.0, "rmse": 255.0, "mse": 1.0, "chroma": 1.0}


def sweep_unit(attack: str) -> str:
    """How a sweep's budgets read: ``/255`` for L∞ and RMSE budgets, "" otherwise."""
    return "/255" if SWEEP_SCALE[ATTACKS[attack]["budget"][0]] == 255.0 else ""


def sweep_key(attack: str) -> str:
    """The preset key a sweep of this attack varies (its budget)."""
    return str(ATTACKS[attack]["budget"][1])


def from_sweep(attack: str, value: float) -> float:
    """A sweep's budget (``4`` for ε = 4/255) as the attack's parameter (4/255)."""
    return float(value) / SWEEP_SCALE[ATTACKS[attack]["budget"][0]]


def budget_of(attack: str, params: dict) -> tuple[str, float]:
    """(kind, value) of an attack's budget: ("linf", 7/255) for PGD's eps7; attacks with the same
    pair face the same attacker's constraint."""
    kind, key = ATTACKS[attack]["budget"]
    return kind, float(params[key])


def parse_objective(text: str) -> tuple[str, str]:
    """``"recon_shift"`` or ``"recon_shift:luma"`` -> (objective, colour space)."""
    name, _, color = text.partition(":")
    color = color or "rgb"
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    if color not in COLOR_SPACES:
        raise ValueError(f"unknown colour space {color!r} in objective {text!r}; choose from {', '.join(COLOR_SPACES)}")
    return name, color
