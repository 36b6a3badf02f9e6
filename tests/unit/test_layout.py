"""The package's layering: no import circle, small modules, resources that describe requests,
and every import following the layers docs/ARCHITECTURE.md draws."""

from __future__ import annotations

import ast
from collections.abc import Mapping
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


# --------------------------------------------------------------------------- the layers
#
# The diagram of docs/ARCHITECTURE.md as a table: each layer, its modules, and the layers
# (or single modules) it may import. A module of the SDK that is in no layer here (the
# sandbox, webhooks, export, the CLI: applications on top of the client) is not checked, and
# neither is an import of one; add a new module of the client to its layer to have it checked.

LAYERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # name: (modules, what they may import: layer names or module names)
    "foundations": (
        frozenset(
            {"_config", "_time", "_logging", "_request", "_gc", "_tasks", "_openenum"}
            | {
                "_fields",
                "_explain",
                "_version",
                "_durable",
                "_serving",
                "_telemetry",
                "_json",
                "_codegen",
            }
        ),
        frozenset({"foundations"}),
    ),
    # The exception classes and the status table: nothing of the SDK but the settings and the
    # log-line helpers (they strip queries); no body decoding, no clock, no retry policy.
    "errors": (frozenset({"errors"}), frozenset({"_config", "_logging"})),
    "serde": (
        frozenset({"_structure_compiler", "_serde", "_request_checks", "models", "wire"}),
        frozenset({"foundations", "errors", "serde"}),
    ),
    # The response pipeline and the pagers: status -> exception, body -> model, pages.
    "pipeline": (
        frozenset({"_response", "_pagination"}),
        frozenset({"foundations", "errors", "serde", "pipeline"}),
    ),
    # Pure policies of the transport: retries (and the retry budget) and the send rate.
    "policies": (
        frozenset({"_retry", "_ratelimit"}),
        frozenset({"foundations", "errors", "policies"}),
    ),
    # Where tokens come from and the 401 refresh; it reaches the token endpoint only through
    # the fetcher the transport hands it, and decodes its answer through the pipeline.
    "auth": (frozenset({"_auth"}), frozenset({"foundations", "errors", "serde", "pipeline"})),
    "transport": (
        frozenset({"_transport"}),
        frozenset({"foundations", "errors", "pipeline", "policies", "auth"}),
    ),
    # Chunking, reconciliation and the re-run ledger over plain callables: no resource.
    "bulk": (
        frozenset({"bulk", "_ledger"}),
        frozenset({"foundations", "errors", "serde", "bulk"}),
    ),
    "resources": (
        frozenset({"resources"}),  # the package and every module in it
        frozenset({"foundations", "errors", "serde", "pipeline", "bulk", "resources"}),
    ),
    "client": (
        frozenset({"_client"}),
        frozenset(
            {"foundations", "errors", "serde", "pipeline", "policies", "auth", "transport"}
            | {"resources", "bulk"}
        ),
    ),
}
# Third-party packages a layer must not import: the wire is the transport's business.
FORBIDDEN_PACKAGES: dict[str, frozenset[str]] = {
    "errors": frozenset({"aiohttp"}),
    "serde": frozenset({"aiohttp"}),
    "pipeline": frozenset({"aiohttp"}),
    "auth": frozenset({"aiohttp"}),
    "resources": frozenset({"aiohttp"}),
    "bulk": frozenset({"aiohttp"}),
}


def layer_of(module: str) -> str | None:
    """The layer of ``amili_async.<module>`` (a package's modules share its layer), or None."""
    parts = module.split(".")
    if parts[0] != "amili_async" or len(parts) < 2:
        return None
    for name, (members, _) in LAYERS.items():
        if parts[1] in members:
            return name
    return None


def layer_violations(imports: Mapping[str, set[str]]) -> list[str]:
    """Every import that the layers table does not allow, as "importer -> imported (why)"."""
    found: list[str] = []
    for module, targets in sorted(imports.items()):
        layer = layer_of(module)
        if layer is None:
            continue
        allowed = LAYERS[layer][1]
        for target in sorted(targets):
            package = target.partition(".")[0]
            if package != "amili_async":
                if package in FORBIDDEN_PACKAGES.get(layer, frozenset()):
                    found.append(f"{module} -> {target} (no {package} in layer {layer})")
                continue
            target_layer = layer_of(target)
            if target_layer is None:
                continue
            short = target.split(".")[1]
            if target_layer not in allowed and short not in allowed:
                found.append(f"{module} -> {target} ({layer} may not import {target_layer})")
    return found


def test_every_import_follows_the_layers_of_the_architecture_document() -> None:
    assert layer_violations(IMPORTS) == []


def test_the_layers_check_catches_a_violation() -> None:
    """A fake import graph breaking each rule of the brief once, and one that breaks none."""
    fake = {
        "amili_async.errors": {"amili_async._retry", "amili_async._serde", "amili_async._config"},
        "amili_async.resources.invoices": {
            "amili_async._transport",
            "amili_async._client",
            "aiohttp.web",
            "amili_async._response",
        },
        "amili_async._retry": {"amili_async._auth", "amili_async._time", "aiohttp"},
        "amili_async._response": {"amili_async._transport", "amili_async._serde"},
        "amili_async.bulk": {"amili_async.resources.invoices", "amili_async._ledger"},
        "amili_async.sandbox._app": {"amili_async._transport"},  # not a layer: unchecked
    }
    assert layer_violations(fake) == [
        "amili_async._response -> amili_async._transport (pipeline may not import transport)",
        "amili_async._retry -> amili_async._auth (policies may not import auth)",
        "amili_async.bulk -> amili_async.resources.invoices (bulk may not import resources)",
        "amili_async.errors -> amili_async._retry (errors may not import policies)",
        "amili_async.errors -> amili_async._serde (errors may not import serde)",
        "amili_async.resources.invoices -> aiohttp.web (no aiohttp in layer resources)",
        "amili_async.resources.invoices -> amili_async._client (resources may not import client)",
        "amili_async.resources.invoices -> amili_async._transport "
        "(resources may not import transport)",
    ]


def test_every_module_of_the_client_has_a_layer() -> None:
    """The modules the diagram draws are all in the table (a typo would leave one unchecked)."""
    for _, (members, _) in LAYERS.items():
        for member in members:
            assert f"amili_async.{member}" in MODULES, member
