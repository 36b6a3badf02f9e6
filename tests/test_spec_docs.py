"""The spec against a table of facts read from the docs pages themselves (issue 21): every
operation of the README's newest table (name, method, path), every query name a curl sample
shows (exact casing, in the query), every status code a page lists, every enum value the
README lists, every field path a page's body tables show, and every complete JSON example.
The facts are parsed from ../shared/amili-docs when the test runs, never copied from the
spec, so the spec cannot drift from the docs without one of these failing."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from tests.conftest import DOCS, SPEC_PATH

SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
METHODS = ("get", "post")
# README phrases of its "Enum lists" gap -> the spec schema the values belong to. Only names
# are mapped here; the values are read from the README.
ENUM_PHRASES = {
    "batch status": ["BatchStatus"],
    "invoice `type`": ["InvoiceType"],
    "invoice `status`": ["InvoiceStatus"],
    "payment `type`": ["PaymentType"],
    "settlement `collectionType`": ["CollectionType"],
    "batch `type`": ["BatchType"],
    "case status/type": ["CaseStatus", "CaseType"],  # "(`OPEN`, `PAUSED`; `COLLECTION_NOTICE`)"
    "claim `type`": ["ClaimType"],
    "debtor `type`": ["DebtorType"],
}
# The JSON examples of the docs that the spec embeds, by (operation or webhook, where).
EMBEDDED_EXAMPLES = {
    "correction-create-corrections.request.json": ("CreateCorrections", "request"),
    "webhooks-batch-completed-event.json": ("BATCH_COMPLETED", "request"),
    "webhooks-settlement-created-event.json": ("SETTLEMENT_CREATED", "request"),
    "webhooks-case-event.json": ("CASE", "request"),
    "webhooks-case-updated-event.json": ("CASE_UPDATED", "request"),
}


@attrs.frozen
class DocsOperation:
    """One row of the README's "Operations (newest version)" table."""

    name: str
    method: str  # GET, POST or unknown
    path: str | None  # None when the docs do not show it
    sheet: str


# --------------------------------------------------------------------------- the docs
def docs(name: str) -> str:
    if not DOCS.is_dir():
        pytest.skip("../shared/amili-docs is not beside this checkout")
    return (DOCS / name).read_text(encoding="utf-8")


@cache
def docs_operations() -> tuple[DocsOperation, ...]:
    section = docs("README.md").split("## Operations (newest version)", 1)[1].split("\n### ")[0]
    found = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[4].startswith("`"):
            continue
        _, names, method, path, sheet, _ = cells
        shown = re.fullmatch(r"`(/[^`]+)`", path)
        for name in names.replace("`", "").split(", "):
            found.append(
                DocsOperation(name, method, shown.group(1) if shown else None, sheet.strip("`"))
            )
    return tuple(found)


def sheet_operations() -> list[DocsOperation]:
    """The operations with a fact sheet of their own (not the token call, not the menu-only
    eviction operations, which share the Collections sheets)."""
    return [o for o in docs_operations() if o.sheet.endswith(".md") and "guide" not in o.sheet]


def query_names(sheet: str) -> set[str]:
    """The query names of every request URL the sheet quotes (curl samples of all page
    versions), a name the docs cut off (``languagecod…``) left out."""
    names: set[str] = set()
    for query in re.findall(r"['`]/[^'`?\s]*\?([^'`\s]+)", docs(sheet)):
        for part in query.split("&"):
            name = part.split("=", 1)[0]
            if name and "…" not in name:
                names.add(name)
    return names


def section(text: str, heading: str) -> str:
    """The body of the first ``## ... heading`` section."""
    match = re.search(rf"^## (?:\d+\. )?{heading}\b.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


def status_codes(sheet: str) -> set[str]:
    """Every status code the sheet's Responses section lists (first cell of its table rows,
    or a bold code in a line), from any page version."""
    codes: set[str] = set()
    for line in section(docs(sheet), "Responses").splitlines():
        first = line.strip().strip("|").split("|")[0] if line.startswith("|") else line
        if line.startswith("|") or line.startswith("- **"):
            codes |= set(re.findall(r"\b([1-5]\d\d)\b", first))
    return codes


def field_paths(sheet: str) -> set[str]:
    """The body field paths of the sheet's tables and bullet lists (``data.claims[].type``);
    a path the docs cut off (``cas…``) left out, names without a dot or [] (parameters) too."""
    paths: set[str] = set()
    for line in docs(sheet).splitlines():
        cell = line.strip().strip("|").split("|")[0] if line.startswith("|") else ""
        bullet = re.match(r"\s*- `([^`]+)`:", line)
        tokens = re.findall(r"`([^`]+)`", cell) or ([bullet.group(1)] if bullet else [])
        last = ""
        for token in tokens:
            if token.startswith(".") and last:
                token = last.rsplit(".", 1)[0] + token
            if "…" in token or not re.fullmatch(r"[\w$]+(\[\])?(\.[\w$]+(\[\])?)*", token):
                continue
            last = token
            if "." in token or "[]" in token:
                paths.add(token)
    return paths


def readme_enum_values() -> dict[str, set[str]]:
    """Enum values per phrase of the README's "Enum lists" gap."""
    line = next(x for x in docs("README.md").splitlines() if x.startswith("- **Enum lists:**"))
    found: dict[str, set[str]] = {}
    for phrase, values in re.findall(r"((?:\w+ )?(?:`\w+`|\w+/\w+|status)) \(([^)]*)\)", line):
        found[phrase.strip()] = set(re.findall(r"`([A-Z_]+)`", values))
    return found


# --------------------------------------------------------------------------- the spec
def spec_operations() -> dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """x-amili-docs-name -> (method, path, path item, operation) of the spec."""
    found = {}
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                found[item[method]["x-amili-docs-name"] + " " + method] = (
                    method,
                    path,
                    item,
                    item[method],
                )
    return found


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def for_name(op: DocsOperation) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    ops = spec_operations()
    return [ops[key] for key in ops if key.rsplit(" ", 1)[0] == op.name]


def parameters(item: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    return [resolve(p) for p in [*item.get("parameters", []), *node.get("parameters", [])]]


def schema_has(schema: dict[str, Any], path: list[str]) -> bool:
    """Whether a field path (``[]`` for array items) exists in a schema."""
    schema = resolve(schema)
    if not path:
        return True
    for option in schema.get("anyOf", []):
        if schema_has(option, path):
            return True
    head, rest = path[0], path[1:]
    if head == "[]":
        return "items" in schema and schema_has(schema["items"], rest)
    props = schema.get("properties", {})
    return head in props and schema_has(props[head], rest)


def split(path: str) -> list[str]:
    return [p for part in path.split(".") for p in (part.removesuffix("[]"), "[]")
            if p and (p != "[]" or part.endswith("[]"))]  # fmt: skip


def body_schemas(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The request body schema and every 2xx answer schema of an operation."""
    found = []
    if "requestBody" in node:
        found += [c["schema"] for c in resolve(node["requestBody"])["content"].values()]
    for status, response in node["responses"].items():
        if status.startswith("2"):
            found += [c["schema"] for c in resolve(response).get("content", {}).values()]
    return found


def json_paths(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items()
                for p in [f"{prefix}{k}", *json_paths(v, f"{prefix}{k}.")]]  # fmt: skip
    if isinstance(value, list):
        return [p for v in value for p in json_paths(v, prefix.removesuffix(".") + "[].")]
    return []


# --------------------------------------------------------------------------- the checks
def test_the_table_of_facts_is_read_from_the_docs() -> None:
    """The parsers find what the pages hold (a parser that reads nothing checks nothing)."""
    assert len(sheet_operations()) >= 20
    assert len(query_names("batches-get-batches-by-organization.md")) == 7
    assert len(query_names("invoice-get-invoices-by-organization.md")) == 8
    assert status_codes("invoice-create-invoices.md") >= {"202", "400", "409", "500"}
    assert "data.debtors[].phoneNumbers[]" in field_paths("invoice-get-invoice-by-id.md")
    assert len(readme_enum_values()) == len(ENUM_PHRASES)


@pytest.mark.parametrize("op", docs_operations(), ids=lambda o: f"{o.method} {o.name}")
def test_every_docs_operation_is_in_the_spec_by_name_method_and_path(op: DocsOperation) -> None:
    if op.sheet == "guide-webhooks.md":
        assert SPEC["webhooks"][op.name]["post"]["x-amili-docs-name"] == op.name
        return
    if op.sheet.startswith("guide-"):
        pytest.skip("the token call is Identiverse's, described in the securitySchemes")
    found = for_name(op)
    assert found, f"no operation has x-amili-docs-name {op.name!r}"
    if op.method in ("GET", "POST"):
        found = [f for f in found if f[0] == op.method.lower()]
        assert found, (op.name, op.method)
    if op.path is not None:
        assert op.path in {path for _, path, _, _ in found}, (op.name, op.path)
    else:  # the docs do not show it: the spec's choice must say so
        for _, _, _, node in found:
            assert "x-amili-inferred" in node, op.name


@pytest.mark.parametrize("op", sheet_operations(), ids=lambda o: f"{o.method} {o.name}")
def test_every_query_name_of_a_curl_sample_is_a_query_parameter(op: DocsOperation) -> None:
    names = query_names(op.sheet)
    params = {
        (p["in"], p["name"])
        for method, _, item, node in for_name(op)
        if op.method in ("unknown", method.upper())
        for p in parameters(item, node)
    }
    for name in names:
        assert ("query", name) in params, (op.name, name)


@pytest.mark.parametrize("op", sheet_operations(), ids=lambda o: f"{o.method} {o.name}")
def test_every_listed_status_is_declared_and_every_other_is_marked(op: DocsOperation) -> None:
    listed = status_codes(op.sheet)
    for method, _, _, node in for_name(op):
        if op.method not in ("unknown", method.upper()):
            continue
        declared = set(node["responses"])
        assert listed <= declared, (op.name, sorted(listed - declared))
        guessed = set(node.get("x-amili-inferred-responses", []))
        unmarked = declared - listed - guessed
        if listed:
            assert not unmarked, (op.name, sorted(unmarked))
        else:  # an unpublished page marks its whole operation x-amili-inferred instead
            assert "x-amili-inferred" in node or "x-amili-inferred-responses" in node, op.name


@pytest.mark.parametrize("op", sheet_operations(), ids=lambda o: f"{o.method} {o.name}")
def test_every_field_a_page_shows_is_in_the_operations_schemas(op: DocsOperation) -> None:
    schemas = [s for method, _, _, node in for_name(op)
               if op.method in ("unknown", method.upper()) for s in body_schemas(node)]  # fmt: skip
    for path in field_paths(op.sheet):
        assert any(schema_has(s, split(path)) for s in schemas), (op.name, path)


def test_every_enum_value_the_docs_list_is_a_documented_value() -> None:
    values = readme_enum_values()
    assert set(values) == set(ENUM_PHRASES)
    schemas = SPEC["components"]["schemas"]
    for phrase, names in ENUM_PHRASES.items():
        every = set().union(*(schemas[n].get("enum", []) for n in names))
        documented = set().union(*(schemas[n].get("x-amili-documented-values", []) for n in names))
        assert values[phrase] <= documented <= every, phrase


def embedded(where: str, kind: str) -> Any:
    """The first example the spec embeds for an operation or webhook's request body."""
    ops = {node["operationId"]: node for _, _, _, node in spec_operations().values()}
    node = SPEC["webhooks"][where]["post"] if where in SPEC["webhooks"] else ops[where]
    assert kind == "request"
    content = resolve(node["requestBody"])["content"]
    return next(iter(next(iter(content.values()))["examples"].values()))["value"]


@pytest.mark.parametrize("filename", sorted(EMBEDDED_EXAMPLES))
def test_the_specs_example_is_the_docs_json_example(filename: str) -> None:
    published = json.loads(docs(f"examples/{filename}"))
    assert embedded(*EMBEDDED_EXAMPLES[filename]) == published


def test_the_complete_get_invoice_by_id_example_is_embedded_as_published() -> None:
    """The one complete response example (the page copy 000_*.txt) is the spec's, field for
    field, and every path of it is in the InvoiceEnvelope schema."""
    page = docs(next(p.name for p in Path(DOCS).glob("000_*.txt")))
    start = page.index("200 - Example 1")
    text = page[page.index("{", start) :]
    published, _ = json.JSONDecoder().raw_decode(text)
    ok = SPEC["paths"]["/orgs/{organizationId}/invoices/{invoiceId}"]["get"]["responses"]["200"]
    media = ok["content"]["application/json"]
    assert media["examples"]["example1"]["value"] == published
    for path in json_paths(published):
        assert schema_has(media["schema"], split(path)), path
