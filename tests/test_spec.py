"""Checks of openapi/amili-autocollect.yaml: validity, the operation set, provenance markers,
enums, and that every JSON example from the docs validates against its schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate

REPO = Path(__file__).parents[1]
SPEC_PATH = REPO / "openapi" / "amili-autocollect.yaml"
DOCS_DIR = REPO.parent / "shared" / "amili-docs"
EXAMPLES_DIR = DOCS_DIR / "examples"
SEED_PAGE = DOCS_DIR / "000_4e79d02459dacddd.txt"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

OPERATION_IDS = {
    "GetInvoicesByOrganization",
    "GetInvoiceById",
    "CreateInvoices",
    "CreatePayments",
    "CreateCorrections",
    "GetBatchesByOrganization",
    "GetBatchById",
    "GetBatchByIdLegacy",
    "GetSettlements",
    "GetSettlementOnId",
    "GetCasesByOrganization",
    "AcceptDebtCollectionList",
    "RejectDebtCollectionList",
    "PauseCase",
    "ResumeCase",
    "WithdrawCase",
    "AcceptEvictionRequest",
    "RejectEvictionRequest",
    "AcceptEvictionConfirmation",
    "RejectEvictionConfirmation",
    "LegacyPing",
    "LegacyGetBatch",
    "LegacyPostBatch",
    "LegacyUploadAttachment",
}

LIST_OPERATIONS = {
    "GetInvoicesByOrganization": "PageToken",
    "GetBatchesByOrganization": "PageToken",
    "GetCasesByOrganization": "PageToken",
    "GetSettlements": "pageToken",
}

EXAMPLE_SCHEMAS = {
    "example-workflow-token-response.json": "TokenResponse",
    "correction-create-corrections.request.json": "CreateCorrectionsRequest",
    "webhooks-batch-completed-event.json": "BatchCompletedEvent",
    "webhooks-settlement-created-event.json": "SettlementCreatedEvent",
    "webhooks-case-event.json": "CaseEvent",
    "webhooks-case-updated-event.json": "CaseUpdatedEvent",
    "batches-get-all-batches-older.response-200.json": "OlderBatchListResponse",
}


@cache
def load_spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as fh:
        spec: dict[str, Any] = yaml.safe_load(fh)
    return spec


@pytest.fixture
def spec() -> dict[str, Any]:
    return load_spec()


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item, item[method]


def op_parameters(
    spec: dict[str, Any], item: dict[str, Any], op: dict[str, Any]
) -> list[dict[str, Any]]:
    return [resolve(spec, p) for p in [*item.get("parameters", []), *op.get("parameters", [])]]


def walk(node: Any, where: str = "#") -> Iterator[tuple[str, Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


def schema_validator(spec: dict[str, Any], name: str) -> OAS31Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return OAS31Validator(schema, format_checker=oas31_format_checker)


def test_spec_is_valid_openapi_31(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate(spec)


def test_servers(spec: dict[str, Any]) -> None:
    urls = [s["url"] for s in spec["servers"]]
    assert urls == [
        "https://api.staging.amili.no/collection/v1",
        "https://api.amili.no/collection/v1",
    ]
    assert "x-amili-source" in spec["servers"][0]
    assert "x-amili-inferred" in spec["servers"][1]
    for path, _method, _item, op in operations(spec):
        if path.startswith("/webapi/"):
            assert [s["url"] for s in op["servers"]] == [
                "https://api.staging.amili.no",
                "https://api.amili.no",
            ]
            assert all("x-amili-inferred" in s for s in op["servers"])


def test_operation_ids_exact(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _path, _method, _item, op in operations(spec)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert set(ids) == OPERATION_IDS


def test_operations_carry_provenance(spec: dict[str, Any]) -> None:
    for path, method, _item, op in operations(spec):
        where = f"{method.upper()} {path}"
        assert op.get("x-amili-sdk-method"), where
        assert op.get("x-amili-docs-name"), where
        assert "x-amili-source" in op or "x-amili-inferred" in op, where
        assert len(op.get("tags", [])) == 1, where
        assert op["tags"][0] in {t["name"] for t in spec["tags"]}, where


def test_inferred_markers_are_one_line(spec: dict[str, Any]) -> None:
    count = 0
    for where, node in walk(spec):
        if isinstance(node, dict) and "x-amili-inferred" in node:
            value = node["x-amili-inferred"]
            assert isinstance(value, str), where
            assert value.strip(), where
            assert "\n" not in value, where
            count += 1
    assert count > 50


def test_enums_list_documented_values_first(spec: dict[str, Any]) -> None:
    enums = {
        name: schema for name, schema in spec["components"]["schemas"].items() if "enum" in schema
    }
    assert enums
    for name, schema in enums.items():
        assert schema["type"] == "string", name
        documented = schema["x-amili-documented-values"]
        values = schema["enum"]
        assert len(values) == len(set(values)), name
        assert values[: len(documented)] == documented, name
        if len(values) > len(documented):
            assert "x-amili-inferred" in schema, name


def test_every_post_takes_an_idempotency_key(spec: dict[str, Any]) -> None:
    for path, method, item, op in operations(spec):
        if method != "post":
            continue
        headers = [p for p in op_parameters(spec, item, op) if p["in"] == "header"]
        keys = [p for p in headers if p["name"] == "IdempotencyKey"]
        assert len(keys) == 1, path
        assert keys[0].get("required", False) is False
        assert keys[0]["schema"] == {"type": "string"}  # no length is published
        assert "x-amili-inferred" in keys[0]


def test_list_operations_take_a_page_token(spec: dict[str, Any]) -> None:
    by_id = {op["operationId"]: (item, op) for _p, _m, item, op in operations(spec)}
    for op_id, token in LIST_OPERATIONS.items():
        item, op = by_id[op_id]
        names = {p["name"] for p in op_parameters(spec, item, op) if p["in"] == "query"}
        assert token in names, op_id


def test_responses_declare_headers(spec: dict[str, Any]) -> None:
    for path, method, _item, op in operations(spec):
        for status, response in op["responses"].items():
            resolved = resolve(spec, response)
            headers = resolved.get("headers", {})
            assert "X-Amili-Request-Id" in headers, f"{method} {path} {status}"
            if status in {"429", "503"}:
                assert "Retry-After" in headers, f"{method} {path} {status}"
            if status.startswith(("4", "5")):
                content = resolved["content"]
                assert list(content) == ["application/problem+json"]


def test_webhooks(spec: dict[str, Any]) -> None:
    expected = {
        "BATCH_COMPLETED": "BatchCompletedEvent",
        "SETTLEMENT_CREATED": "SettlementCreatedEvent",
        "CASE": "CaseEvent",
        "CASE_UPDATED": "CaseUpdatedEvent",
    }
    assert set(spec["webhooks"]) == set(expected)
    for name, schema in expected.items():
        post = spec["webhooks"][name]["post"]
        body = post["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{schema}"}
        headers = {resolve(spec, p)["name"] for p in post["parameters"]}
        assert headers == {
            "X-Amili-Event",
            "IdempotencyKey",
            "X-Amili-Request-Id",
            "X-Webhook-Signature",
        }
        for example in body["examples"].values():
            schema_validator(spec, schema).validate(example["value"])


@pytest.mark.parametrize(("filename", "schema_name"), sorted(EXAMPLE_SCHEMAS.items()))
def test_docs_examples_validate(spec: dict[str, Any], filename: str, schema_name: str) -> None:
    if not EXAMPLES_DIR.is_dir():
        pytest.skip(f"{EXAMPLES_DIR} is missing")
    instance = json.loads((EXAMPLES_DIR / filename).read_text(encoding="utf-8"))
    schema_validator(spec, schema_name).validate(instance)


def test_every_docs_example_is_covered() -> None:
    if not EXAMPLES_DIR.is_dir():
        pytest.skip(f"{EXAMPLES_DIR} is missing")
    assert {p.name for p in EXAMPLES_DIR.glob("*.json")} == set(EXAMPLE_SCHEMAS)


def seed_example(spec: dict[str, Any]) -> dict[str, Any]:
    op = spec["paths"]["/orgs/{organizationId}/invoices/{invoiceId}"]["get"]
    content = op["responses"]["200"]["content"]["application/json"]
    value: dict[str, Any] = content["examples"]["example1"]["value"]
    return value


def test_seed_invoice_example_validates(spec: dict[str, Any]) -> None:
    schema_validator(spec, "InvoiceEnvelope").validate(seed_example(spec))


def test_seed_invoice_example_is_complete(spec: dict[str, Any]) -> None:
    if not SEED_PAGE.is_file():
        pytest.skip(f"{SEED_PAGE} is missing")
    text = SEED_PAGE.read_text(encoding="utf-8")
    start = text.index("{", text.index("200 - Example 1"))
    end = text.index("Modified at", start)
    assert seed_example(spec) == json.loads(text[start:end])


def test_embedded_examples_validate(spec: dict[str, Any]) -> None:
    checked = 0
    for _path, _method, _item, op in operations(spec):
        media: list[dict[str, Any]] = []
        if "requestBody" in op:
            media += resolve(spec, op["requestBody"])["content"].values()
        for response in op["responses"].values():
            media += resolve(spec, response).get("content", {}).values()
        for entry in media:
            schema = entry.get("schema", {})
            if "$ref" not in schema:
                continue
            name = schema["$ref"].rsplit("/", 1)[-1]
            for example in entry.get("examples", {}).values():
                schema_validator(spec, name).validate(example["value"])
                checked += 1
    assert checked >= 10
