"""Attack registry and named presets (pure data: read at collection, no torch).

Keys per attack: module, class, paper, objectives (the objectives it may use), presets, and
optionally positive (parameters that must be > 0, not merely >= 0).

Budgets follow ../DESIGN §3 and NIC-RobustBench's published presets. A suite entry may
override any preset parameter by name (``steps = 2`` for a quick run).
"""

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
PROXIES = ("noise", "ste")

_LINF = {
    "eps7": {"eps": 7 / 255, "alpha": 2 / 255, "steps": 12},
    "eps5": {"eps": 5 / 255, "alpha": 2 / 255, "steps": 12},
    "eps7-fine": {"eps": 7 / 255, "alpha": 1 / 255, "steps": 24},
    "eps3": {"eps": 3 / 255, "alpha": 1 / 255, "steps": 12},
}

ATTACKS = {
    "ifgsm": {
        "module": "ifgsm",
        "class": "IFGSM",
        "positive": ("alpha",),
        "paper": "Kurakin et al. 2017",
        "objectives": OBJECTIVES,
        "presets": _LINF,
    },
    "pgd": {
        "module": "pgd",
        "class": "PGD",
        "positive": ("alpha",),
        "paper": "Madry et al. 2018",
        "objectives": OBJECTIVES,
        "presets": _LINF,
    },
    # MSE budget tau on x' - x; lr in units of sqrt(tau) (see ftda.py)
    "ftda": {
        "module": "ftda",
        "class": "FTDA",
        "positive": ("lr",),  # must be > 0 (checked at collection)
        "paper": "Chen & Ma, TCSVT 2023",
        "objectives": OBJECTIVES,
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
        "positive": ("alpha",),  # must be > 0 (checked at collection)
        "paper": "Wang & Simoncelli 2008",
        "objectives": OBJECTIVES,
        "presets": {
            "rmse7": {"eps": 7 / 255, "alpha": 2 / 255, "steps": 25},
            "rmse5": {"eps": 5 / 255, "alpha": 1.5 / 255, "steps": 25},
            "rmse7-30": {"eps": 7 / 255, "alpha": 2 / 255, "steps": 30},
        },
    },
    "madc-linf": {
        "module": "madc",
        "class": "MADCLinf",
        "positive": ("alpha",),  # must be > 0 (checked at collection)
        "paper": "Wang & Simoncelli 2008",
        "objectives": OBJECTIVES,
        "presets": {
            "eps7": {"eps": 7 / 255, "alpha": 1 / 255, "steps": 30},
            "eps5": {"eps": 5 / 255, "alpha": 1 / 255, "steps": 30},
        },
    },
    # soft LL-band penalty plus a hard L-inf cap eps (see ssah.py)
    "ssah": {
        "module": "ssah",
        "class": "SSAH",
        "positive": ("lr",),  # must be > 0 (checked at collection)
        "paper": "Luo et al., CVPR 2022",
        "objectives": OBJECTIVES,
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
        "positive": ("lr",),  # must be > 0 (checked at collection)
        "paper": "Bhattad et al., ICLR 2020",
        "objectives": OBJECTIVES,
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
        "objectives": OBJECTIVES,
        "presets": {
            "eps7": {"eps": 7 / 255, "sigma": 7 / 255},
            "eps5": {"eps": 5 / 255, "sigma": 5 / 255},
            "eps7-sigma14": {"eps": 7 / 255, "sigma": 14 / 255},
            "eps5-sigma10": {"eps": 5 / 255, "sigma": 10 / 255},
        },
    },
}

DEFAULT_OBJECTIVE = "recon_shift"


def parse_objective(text: str) -> tuple[str, str]:
    """``"recon_shift"`` or ``"recon_shift:luma"`` -> (objective, colour space)."""
    name, _, color = text.partition(":")
    color = color or "rgb"
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    if color not in COLOR_SPACES:
        raise ValueError(f"unknown colour space {color!r} in objective {text!r}; choose from {', '.join(COLOR_SPACES)}")
    return name, color
