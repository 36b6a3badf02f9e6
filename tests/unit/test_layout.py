"""The package's layering: no import circle, small modules, resources that describe requests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "amili_async"
# The issue that set the layout: no hand-written module over 600 lines (generated models aside).
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Modules that module `name` imports, absolute (TYPE_CHECKING imports count too)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found - {name}


IMPORTS = {name: imports_of(name) for name in MODULES}
GRAPH = {name: {m for m in found if m in MODULES} for name, found in IMPORTS.items()}


def test_the_package_has_no_import_circle() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(GRAPH[node]):
            if target == "amili_async":
                continue  # the package's own __init__ only re-exports
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "amili_async.models"))
def test_hand_written_modules_stay_small(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


@pytest.mark.parametrize(
    "name", sorted(n for n in MODULES if n.startswith("amili_async.resources"))
)
def test_resources_only_describe_requests(name: str) -> None:
    """Resources sit below the client and above the pipeline (bulk: below them, see test_bulk)."""
    forbidden = {"aiohttp", "amili_async._client", "amili_async._transport"}
    assert {m.partition(".")[0] if m.startswith("aiohttp") else m for m in IMPORTS[name]} & (
        forbidden
    ) == set()
