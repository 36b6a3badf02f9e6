"""Generate amili_async/models from the OpenAPI spec (attrs classes + open enums).

`python codegen/generate.py` rewrites the committed models; `--check` generates into a temporary
directory and fails (exit 1, with a diff) when the committed file differs. The output is a pure
function of the spec, the templates and the pinned tool versions (datamodel-code-generator, ruff).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = Path(os.environ.get("AMILI_SPEC", ROOT / "openapi" / "amili-autocollect.yaml"))
TEMPLATES = ROOT / "codegen" / "templates"
HEADER = ROOT / "codegen" / "header.txt"
TARGET = ROOT / "amili_async" / "models" / "__init__.py"

# Options of datamodel-code-generator; each one shapes the generated API, so keep them explicit.
CODEGEN_OPTIONS = [
    "--input-file-type=openapi",
    # The dataclass output is the closest built-in shape; our templates turn it into attrs.
    "--output-model-type=dataclasses.dataclass",
    f"--custom-template-dir={TEMPLATES}",
    f"--custom-file-header-path={HEADER}",
    "--additional-imports=attrs,amili_async._openenum.OpenEnum,amili_async._request_checks.check_request",
    # Python names are snake_case; the template records each wire name in field metadata.
    "--snake-case-field",
    "--capitalise-enum-members",
    "--enum-field-as-literal=none",
    "--use-standard-collections",
    "--use-union-operator",
    "--target-python-version=3.11",
    "--use-schema-description",
    "--use-field-description",
    "--keep-model-order",
    "--disable-timestamp",
    # Ids stay `str`: parsing UUIDs costs time on every listing and buys users nothing.
    "--type-mappings",
    "string+uuid=string",
    "--output-datetime-class=datetime",
    # Personal data (x-amili-personal-data: true) is kept out of reprs by the template.
    "--field-extra-keys",
    "x-amili-personal-data",
    # Formatting is done by the pinned ruff below, not by the generator's formatters.
    "--formatters=isort",
]


# The generator imports `date` as `date_aliased` (a field is called `date`); the public
# annotations say `dt.date` / `dt.datetime` instead, which no field name can shadow.
_DATETIME_IMPORTS = "from datetime import date as date_aliased\nfrom datetime import datetime\n"
_ANNOTATION = re.compile(r"^(    \w+: )([^=\n]+)( = attrs\.field\()", re.MULTILINE)
_CLASS = re.compile(r"^class (\w+)\b", re.MULTILINE)


def _refs(node: Any) -> set[str]:
    """Names of the component schemas `node` refers to (directly, anywhere inside it)."""
    if isinstance(node, dict):
        found = {str(node["$ref"]).rsplit("/", 1)[-1]} if "$ref" in node else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _reachable(names: set[str], schemas: dict[str, Any]) -> set[str]:
    """`names` and every component schema they refer to, transitively."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in seen and name in schemas:
            seen.add(name)
            todo += _refs(schemas[name])
    return seen


def request_models(spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(request models, request bodies) as the spec says, not as their names suggest.

    A request model is a schema the SDK sends and never reads: reachable from an operation's
    request body and from no response (so `LegacyBatch`, read and written, and `Debtor`, shared
    with `Invoice`, stay lenient). The bodies are the schemas a request body names itself;
    the other request models are their items (`NewInvoice`), checked as they are built.
    """
    schemas = spec["components"]["schemas"]
    named_bodies = spec["components"].get("requestBodies", {})
    bodies: set[str] = set()
    answers: set[str] = set()
    for operations in spec["paths"].values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody", {})
            if "$ref" in body:
                body = named_bodies[body["$ref"].rsplit("/", 1)[-1]]
            bodies |= _refs(body.get("content", {}))
            answers |= _refs(operation.get("responses", {}))
    sent = _reachable(bodies, schemas) - _reachable(answers, schemas)
    sent = {name for name in sent if "enum" not in schemas[name]}  # models, not their enums
    return sorted(sent), sorted(bodies & sent)


def _public_names(source: str, requests: list[str]) -> str:
    """Annotations without codegen aliases, and `__all__` listing the models and enums only."""
    if "datetime" in source:
        source = source.replace(_DATETIME_IMPORTS, "import datetime as dt\n")
        source = source.replace("from datetime import datetime\n", "import datetime as dt\n")

        def qualify(match: re.Match[str]) -> str:
            hint = re.sub(r"\bdate_aliased\b", "dt.date", match[2])
            hint = re.sub(r"(?<![.\w])datetime\b", "dt.datetime", hint)
            return match[1] + hint + match[3]

        source = _ANNOTATION.sub(qualify, source)
    names = sorted(_CLASS.findall(source))
    exported = "".join(f"    {name!r},\n".replace("'", '"') for name in names)
    marked = "".join(f"    {name},\n" for name in requests)
    return (
        f"{source}\n\n"
        "REQUEST_MODELS: tuple[type[Any], ...] = (\n"
        f"{marked})\n"
        '"""The models the SDK sends (from the spec: reachable from a request body and from no\n'
        'response); what they carry is checked before the network (`_request_checks`)."""\n\n'
        f"__all__ = [\n{exported}]\n"
    )


def generate() -> str:
    """Run the generator, normalise its output with ruff (imports, format) and return it."""
    spec = yaml.safe_load(SPEC.read_text())
    requests, bodies = request_models(spec)
    # The template adds the build-time check to the request items (not to the bodies: they
    # are built from items already checked).
    extra = {name: {"request_item": True} for name in requests if name not in bodies}
    with tempfile.TemporaryDirectory() as tmp:
        # A plain module name: ruff keeps unused imports in an `__init__.py` (re-exports).
        output = Path(tmp) / "models.py"
        extra_file = Path(tmp) / "extra.json"
        extra_file.write_text(json.dumps(extra))
        cmd = [
            sys.executable,
            "-m",
            "datamodel_code_generator",
            f"--input={SPEC}",
            f"--output={output}",
            *CODEGEN_OPTIONS,
            f"--extra-template-data={extra_file}",
        ]
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
        output.write_text(_public_names(output.read_text(), requests))
        ruff = [sys.executable, "-m", "ruff"]
        config = f"--config={ROOT / 'pyproject.toml'}"
        subprocess.run(
            [*ruff, "check", config, "--fix", "--select=F401,I,UP", "--quiet", str(output)],
            check=True,
            cwd=ROOT,
        )
        subprocess.run([*ruff, "format", config, "--quiet", str(output)], check=True, cwd=ROOT)
        return output.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when the models are stale")
    args = parser.parse_args()
    new = generate()
    if not args.check:
        TARGET.write_text(new)
        print(f"wrote {TARGET.relative_to(ROOT)}")
        return 0
    old = TARGET.read_text() if TARGET.exists() else ""
    if new == old:
        print("generated models are fresh")
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            str(TARGET.relative_to(ROOT)),
            "regenerated",
        )
    )
    print("\ngenerated models are stale: run `make codegen` and commit the result", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
