"""The project's layout as a test: rooms, the direction of their dependencies, no
import cycles, private modules kept private, and modules of a readable size.

The rooms, bottom to top (README "Layout"): ``model`` <- ``diagrams`` <-
``conformance``; inside ``conformance``: ``traces`` <- ``client`` and ``site`` (which
never import each other) <- ``suite`` <- the command line and the pytest plugin. A
module may import its own room and the rooms below it, never one above or beside it.
Every import counts -- at module level, inside a function, or for type checking only.

A cycle is looked for among the imports that run (those under ``if TYPE_CHECKING:``
do not): a type named for an annotation is not a dependency at run time, and a room
often names the type of what owns it (a server its fleet).

A small AST walk; no dependency of its own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Source folders and the package each one installs as (pyproject.toml).
PACKAGES = {"model": "sephb.model", "diagrams": "sephb.diagrams",
            "conformance": "sephb.conformance"}
#: Rooms and their level: a module may import rooms of its own level or lower, and of
#: its own level only its own room.
ROOMS = {
    "sephb.model": 0,
    "sephb.diagrams": 1,
    "sephb.conformance.traces": 2,
    "sephb.conformance.client": 3,
    "sephb.conformance.site": 3,
    "sephb.conformance.monitor": 3,
    "sephb.conformance.suite": 4,
    "sephb.conformance": 5,  # cli, pytest_plugin, _argtypes
}
#: Lines past which a module must say in its docstring why it is long.
LONG = 700
LONG_REASON = "Why this module is long:"


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    #: (imported module, line, runs at import time or call time, not typing-only)
    imports: list[tuple[str, int, bool]] = field(default_factory=list)


def _modules() -> dict[str, Module]:
    out: dict[str, Module] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            out[name] = Module(name, path, path.name == "__init__.py",
                               ast.parse(path.read_text(), str(path)))
    for m in out.values():
        m.imports = list(_imports(m, out))
    return out


def _typing_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _walk(node: ast.AST, typing: bool = False
          ) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        inner = typing or _typing_only(child)
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, inner
        yield from _walk(child, inner)


def _imports(m: Module, known: dict[str, Module]) -> Iterator[tuple[str, int, bool]]:
    """The project modules ``m`` imports, resolved: ``from pkg import mod`` names the
    module ``pkg.mod`` when there is one, else ``pkg``."""
    here = m.name if m.is_package else m.name.rpartition(".")[0]
    for node, typing in _walk(m.tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                up = here.split(".")
                up = up[: len(up) - (node.level - 1)]
                base = ".".join([*up, base]) if base else ".".join(up)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for t in targets:
            if t.startswith("sephb."):
                yield t, node.lineno, not typing


def _room(name: str) -> str:
    return max((r for r in ROOMS if name == r or name.startswith(r + ".")), key=len)


MODULES = _modules()


def test_the_walk_sees_every_room() -> None:
    rooms = {_room(n) for n in MODULES}
    assert rooms == set(ROOMS)
    assert any(t == "sephb.conformance.traces.wire"
               for t, *_ in MODULES["sephb.conformance.site._server"].imports)


def test_dependencies_point_down() -> None:
    wrong = []
    for m in MODULES.values():
        mine = _room(m.name)
        for target, line, _ in m.imports:
            theirs = _room(target)
            if theirs == mine:
                continue
            if ROOMS[theirs] >= ROOMS[mine]:
                wrong.append(f"{m.path.relative_to(ROOT)}:{line}: {mine} imports "
                             f"{target} ({theirs} is above or beside it)")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    g = nx.DiGraph()
    for m in MODULES.values():
        g.add_node(m.name)
        for target, _, runs in m.imports:
            # Importing a.b.c runs a.b's __init__ first, unless the importer is
            # inside a.b (then that __init__ is already running).
            chain = [target]
            parent = target.rpartition(".")[0]
            while parent in MODULES and not m.name.startswith(parent + "."):
                chain.append(parent)
                parent = parent.rpartition(".")[0]
            for t in chain:
                if runs and t in MODULES and t != m.name:
                    g.add_edge(m.name, t)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]])
                                                     for c in cycles)


def test_private_modules_stay_in_their_room() -> None:
    """A module whose name starts with ``_`` is its room's business: other rooms
    import the room (its ``__init__`` exports) or its public modules."""
    wrong = []
    for m in MODULES.values():
        for target, line, _ in m.imports:
            private = any(p.startswith("_") for p in target.split(".")[2:])
            if private and _room(target) != _room(m.name):
                wrong.append(f"{m.path.relative_to(ROOT)}:{line}: imports {target}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("room", sorted(r for r in ROOMS if r.count(".") == 2))
def test_every_room_says_what_it_is(room: str) -> None:
    doc = ast.get_docstring(MODULES[room].tree) or ""
    assert "May import" in doc and "Exports" in doc, (
        f"{room}/__init__.py: its docstring says what the room is for, what it may "
        f"import and what it exports")


def test_modules_are_short_or_say_why() -> None:
    long = []
    for m in MODULES.values():
        if not m.name.startswith("sephb.conformance"):
            continue
        n = len(m.path.read_text().splitlines())
        if n > LONG and LONG_REASON not in (ast.get_docstring(m.tree) or ""):
            long.append(f"{m.path.relative_to(ROOT)}: {n} lines, and no "
                        f"{LONG_REASON!r} in its docstring")
    assert not long, "\n".join(long)
