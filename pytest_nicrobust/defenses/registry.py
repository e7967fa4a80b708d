"""Names of the defenses a suite may list (pure data, read at collection: no torch).

The transforms themselves live in :mod:`pytest_nicrobust.defenses`. A project adds its own
defense from its ``conftest.py``::

    from pytest_nicrobust.defenses import register_defense
    register_defense("median")          # now `defenses = ["median"]` is a valid suite entry

    @pytest.fixture
    def nicrobust_defense_median():     # "-" in a name becomes "_" in the fixture name
        return MyMedianDefense()        # a pytest_nicrobust.defenses.Defense
"""

BUILTIN_DEFENSE_NAMES = (
    "none",
    "flip",
    "roll",
    "rotate",
    "color-reorder",
    "random-ensemble",
    "self-ensemble",
    "jpeg",
    "blur",
)

# A list, so registration from a conftest is seen by the suite parser (``name in DEFENSES``).
DEFENSES = list(BUILTIN_DEFENSE_NAMES)


def register_defense(name: str) -> None:
    """Allow ``name`` in suite files; provide a fixture ``nicrobust_defense_<name>`` that returns it."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"defense names use letters, digits, '-' and '_'; got {name!r}")
    if name not in DEFENSES:
        DEFENSES.append(name)


def fixture_name(defense: str) -> str:
    return "nicrobust_defense_" + defense.replace("-", "_")
