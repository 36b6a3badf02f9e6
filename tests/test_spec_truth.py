"""Spec truth (issue 11): every example decodes with the SDK, every guess is marked with the
evidence it rests on, and the operations the docs show only in older versions are either in
the spec or recorded as left out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from amili_async import _serde, models
from tests.conftest import ROOT, SPEC_PATH
from tests.test_spec import EXAMPLE_SCHEMAS, EXAMPLES_DIR, HTTP_METHODS

SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
DESIGN = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in SPEC["paths"].items()
        for method in HTTP_METHODS
        if method in item
    ]


def embedded_examples() -> list[tuple[str, str, Any]]:
    """(where, schema name, value) of every example the spec embeds under a media type."""
    found = []
    sources = [(f"{m.upper()} {p}", op) for p, m, op in operations()]
    sources += [(f"webhook {name}", item["post"]) for name, item in SPEC["webhooks"].items()]
    for where, op in sources:
        media = []
        if "requestBody" in op:
            media += list(op["requestBody"].get("content", {}).values())
        for response in op.get("responses", {}).values():
            media += list(response.get("content", {}).values())
        for entry in media:
            ref = entry.get("schema", {}).get("$ref", "")
            for key, example in entry.get("examples", {}).items():
                found.append((f"{where} {key}", ref.rsplit("/", 1)[-1], example["value"]))
    return found


@pytest.mark.parametrize(("where", "schema", "value"), embedded_examples())
def test_every_spec_example_decodes_with_the_sdk(where: str, schema: str, value: Any) -> None:
    decoded = _serde.decode(json.dumps(value).encode(), getattr(models, schema))
    assert isinstance(decoded, getattr(models, schema)), where


@pytest.mark.parametrize(("filename", "schema"), sorted(EXAMPLE_SCHEMAS.items()))
def test_every_docs_example_decodes_with_the_sdk(filename: str, schema: str) -> None:
    if not EXAMPLES_DIR.is_dir():
        pytest.skip(f"{EXAMPLES_DIR} is missing")
    raw = (EXAMPLES_DIR / filename).read_bytes()
    assert isinstance(_serde.decode(raw, getattr(models, schema)), getattr(models, schema))


def legacy_example(name: str) -> bytes:
    ok = SPEC["paths"]["/webapi/api/Batch"]["get"]["responses"]["200"]
    return json.dumps(ok["content"]["application/json"]["examples"][name]["value"]).encode()


def test_the_newest_legacy_case_decodes_as_published() -> None:
    batch = _serde.decode(legacy_example("newestCase"), models.LegacyBatch)
    assert batch.case is not None
    (case,) = batch.case
    assert case.case_number == 0  # an integer in the docs' example, kept as sent
    assert case.invoices is not None
    assert case.invoices[0].currency == {}  # the docs' {} (an unexpanded schema), kept as sent
    assert case.sub_status == models.CaseSubStatus.DEBT_COLLECTION_LIST_MANUAL
    assert case.debtors is not None
    assert case.debtors[0].debtor_id == "0e24973d-821c-4f49-b6cd-c5f93b86e51d"


def test_the_older_lower_case_legacy_case_decodes() -> None:
    batch = _serde.decode(legacy_example("olderCase"), models.LegacyBatch)
    assert batch.case is not None
    (case,) = batch.case
    assert case.casenumber == "string"
    assert case.case_id is None
    assert case.history is not None
    assert case.history[0].type == 1
    assert case.payment_details is not None
    assert case.payment_details.kid == "string"
    assert batch.settlement is not None
    assert [s.case_number for s in batch.settlement] == ["string", None]
    assert [s.casenumber for s in batch.settlement] == [None, "string"]


def test_every_guessed_required_list_says_why() -> None:
    for name, schema in SCHEMAS.items():
        if "required" in schema:
            reason = schema.get("x-amili-inferred-required", "")
            assert len(reason) > 40, name
            assert "\n" not in reason, name


def test_every_enum_with_a_single_shown_value_is_marked_inferred() -> None:
    for name, schema in SCHEMAS.items():
        if "enum" in schema and len(schema["x-amili-documented-values"]) <= 1:
            assert "x-amili-inferred" in schema, name


def test_list_item_shapes_taken_from_another_page_are_marked() -> None:
    for name in ("InvoiceListResponse", "SettlementListResponse"):
        assert "x-amili-inferred" in SCHEMAS[name]["properties"]["data"], name


def test_security_choices_are_marked() -> None:
    for path, _method, op in operations():
        if path.startswith("/webapi/"):
            assert "security" in op, path
            assert "x-amili-inferred-security" in op, path
        if any(s.get("identiverse") for s in op.get("security", [])):
            assert "x-amili-inferred-security" in op, path
    scheme = SPEC["components"]["securitySchemes"]["identiverse"]
    assert "x-amili-inferred" in scheme["flows"]["clientCredentials"]


def test_collections_posts_cite_the_menu_they_come_from() -> None:
    for _path, method, op in operations():
        if op["tags"] == ["Collections"] and method == "post":
            assert "navigation menu only" in op["x-amili-source-kind"], op["operationId"]
            assert "not published" in op["x-amili-inferred"], op["operationId"]


def test_no_reason_is_a_bare_not_shown() -> None:
    """A reason says what the choice rests on, not only that the docs are silent."""
    text = SPEC_PATH.read_text(encoding="utf-8")
    bare = re.findall(r'x-amili-inferred: "(not shown|RFC 9457 member|[^";]{0,25})"', text)
    assert not bare


def older_only_operations(docs: Path) -> list[tuple[str, str]]:
    """(method, path) of the README's "Operations that exist only in older doc versions" rows
    that give a path."""
    text = (docs / "README.md").read_text(encoding="utf-8")
    section = text.split("### Operations that exist only in older doc versions", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| [^|]+ \| (GET|POST) \| `([^`]+)` \|", section, flags=re.MULTILINE)
    return [(method, path) for method, path in rows]


def test_older_only_operations_are_in_the_spec_or_recorded_as_left_out(docs_dir: Path) -> None:
    older = older_only_operations(docs_dir)
    assert len(older) >= 4
    in_spec = {(m.upper(), p.replace("{organizationId}", "{orgId}")) for p, m, _ in operations()}
    omitted = {(o["method"], o["path"]): o for o in SPEC["x-amili-omitted-operations"]}
    for method, path in older:
        if (method, path) in in_spec:
            continue
        assert (method, path) in omitted, (method, path)
        entry = omitted[(method, path)]
        assert len(entry["reason"]) > 60
        assert f"`{method} {path}`" in DESIGN, "docs/DESIGN.md does not record it"
    assert set(omitted) <= set(older)
