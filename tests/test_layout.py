"""The house's import directions, read from the source: no cycle, and no import from a lower room
to a higher one (docs/architecture.md draws the rooms).

A room may import its own modules and any room below it. Adding a module to the package means
adding it to a room here; an import that runs upward fails this test with the offending line.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "pytest_nicrobust"

# Rooms from the ground up; a module belongs to the first room whose prefix matches its name.
ROOMS = [
    (
        "ground",
        (
            "pytest_nicrobust",
            "pytest_nicrobust.names",
            "pytest_nicrobust.record",
            "pytest_nicrobust.files",
            "pytest_nicrobust.seeding",
            "pytest_nicrobust.timeguard",
            "pytest_nicrobust.child",
            "pytest_nicrobust.metrics.colors",
        ),
    ),
    (
        "extension points",
        (
            "pytest_nicrobust.datasets",
            "pytest_nicrobust.metrics",
            "pytest_nicrobust.attacks",
            "pytest_nicrobust.codecs",
            "pytest_nicrobust.defenses",
        ),
    ),
    ("config", ("pytest_nicrobust.config",)),
    ("verdict", ("pytest_nicrobust.verdict",)),
    ("outputs", ("pytest_nicrobust.outputs",)),
    ("run", ("pytest_nicrobust.run",)),
    (
        "session",
        (
            "pytest_nicrobust.options",
            "pytest_nicrobust.session",
            "pytest_nicrobust.collection",
            "pytest_nicrobust.scheduling",
        ),
    ),
    ("entry points", ("pytest_nicrobust.plugin", "pytest_nicrobust.cli", "pytest_nicrobust.__main__")),
]
# Within the extension points the order matters too: datasets check sizes against metrics, codecs are
# checked on datasets, defenses wrap codecs.
EXTENSION_ORDER = [
    "pytest_nicrobust.metrics",
    "pytest_nicrobust.datasets",
    "pytest_nicrobust.attacks",
    "pytest_nicrobust.codecs",
    "pytest_nicrobust.defenses",
]


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: pathlib.Path, name: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every import of a package module in ``path``, module-level and local alike."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_package else name.split(".")[:-1]
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{a.name}" for a in node.names]
            out += [(node.lineno, c if c in known else target) for c in candidates]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    result = []
    for line, target in out:
        while target and target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            result.append((line, target))
    return result


def room_of(name: str) -> int:
    best = None
    for i, (_, prefixes) in enumerate(ROOMS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    assert best is not None, f"{name} belongs to no room: add it to ROOMS in tests/test_layout.py"
    return best[0]


def rank(name: str) -> tuple[int, int]:
    room = room_of(name)
    sub = next((i for i, p in enumerate(EXTENSION_ORDER) if name == p or name.startswith(p + ".")), 0)
    return room, sub if ROOMS[room][0] == "extension points" else 0


def violations(mods: dict[str, pathlib.Path]) -> list[str]:
    known = set(mods)
    bad = []
    for name, path in sorted(mods.items()):
        where = f"{name.replace('.', '/')}.py"
        for line, target in imports(path, name, known):
            if name.startswith(target + ".") and target != "pytest_nicrobust":
                bad.append(f"{where}:{line}: {name} imports its package face {target}")
            elif rank(target) > rank(name):
                bad.append(
                    f"{where}:{line}: {name} ({ROOMS[room_of(name)][0]}) imports "
                    f"{target} ({ROOMS[room_of(target)][0]}), a room above it"
                )
    return bad


def cycles(mods: dict[str, pathlib.Path]) -> list[list[str]]:
    known = set(mods)
    graph = {name: {t for _, t in imports(path, name, known)} for name, path in mods.items()}
    found, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_every_module_has_a_room():
    for name in modules():
        room_of(name)


def test_no_import_runs_upward():
    bad = violations(modules())
    assert not bad, "imports that run upward (see docs/architecture.md):\n" + "\n".join(bad)


def test_no_import_cycle():
    found = cycles(modules())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_check_catches_an_upward_import(tmp_path):
    """The rule itself: a ground-floor module importing the run room is reported, with its line."""
    mods = modules()
    fake = tmp_path / "names.py"
    fake.write_text(mods["pytest_nicrobust.names"].read_text() + "\nfrom .run import measure\n")
    bad = violations({**mods, "pytest_nicrobust.names": fake})
    assert any("pytest_nicrobust.names (ground) imports pytest_nicrobust.run.measure (run)" in v for v in bad), bad


def test_the_check_catches_a_cycle(tmp_path):
    mods = modules()
    fake = tmp_path / "files.py"
    fake.write_text(mods["pytest_nicrobust.files"].read_text() + "\nfrom . import names\n")
    fake_names = tmp_path / "names_.py"
    fake_names.write_text(mods["pytest_nicrobust.names"].read_text() + "\nfrom . import files\n")
    found = cycles({**mods, "pytest_nicrobust.files": fake, "pytest_nicrobust.names": fake_names})
    assert any(set(c) == {"pytest_nicrobust.files", "pytest_nicrobust.names"} for c in found), found
