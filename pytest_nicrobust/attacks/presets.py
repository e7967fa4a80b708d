"""Attack registry and named presets (pure data: read at collection, no torch).

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
        "paper": "Kurakin et al. 2017",
        "objectives": OBJECTIVES,
        "presets": _LINF,
    },
    "pgd": {
        "module": "pgd",
        "class": "PGD",
        "paper": "Madry et al. 2018",
        "objectives": OBJECTIVES,
        "presets": _LINF,
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
