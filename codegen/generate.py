"""Generate amili_async/models from the OpenAPI spec (attrs classes + open enums).

`python codegen/generate.py` rewrites the committed models; `--check` generates into a temporary
directory and fails (exit 1, with a diff) when the committed file differs. The output is a pure
function of the spec, the templates and the pinned tool versions (datamodel-code-generator, ruff).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

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
    "--additional-imports=attrs,amili_async._openenum.OpenEnum,amili_async._requests.check_request",
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


def _public_names(source: str) -> str:
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
    return f"{source}\n\n__all__ = [\n{exported}]\n"


def generate() -> str:
    """Run the generator, normalise its output with ruff (imports, format) and return it."""
    with tempfile.TemporaryDirectory() as tmp:
        # A plain module name: ruff keeps unused imports in an `__init__.py` (re-exports).
        output = Path(tmp) / "models.py"
        cmd = [
            sys.executable,
            "-m",
            "datamodel_code_generator",
            f"--input={SPEC}",
            f"--output={output}",
            *CODEGEN_OPTIONS,
        ]
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
        output.write_text(_public_names(output.read_text()))
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
