"""The sandbox validates request bodies as the spec says: every body the spec's schema accepts
is accepted (202), and every schema violation we derive from the spec (a required field left
out, a wrong JSON type, a value outside an enum, an empty list) is refused with 422."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS31Validator

from tests.conftest import SPEC_PATH

from ._support import Api

SPEC = yaml.safe_load(SPEC_PATH.read_text())
SCHEMAS = SPEC["components"]["schemas"]


def validator(name: str) -> OAS31Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    return OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER)


def item_schema(request: str, key: str) -> dict[str, Any]:
    ref = SCHEMAS[request]["properties"][key]["items"]["$ref"]
    return SCHEMAS[ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]


def valid_item(key: str, invoice_id: str) -> dict[str, Any]:
    if key == "invoices":
        return {
            "type": "NOTICE",
            "invoiceNumber": "INV-2024-00123",
            "originalInvoiceAmount": 4500.10,
            "currency": "NOK",
            "invoiceDate": "2024-01-15T00:00:00Z",
            "dueDate": "2024-02-15T00:00:00Z",
            "uniqueSourceInvoiceId": "erp-order-9981",
        }
    item = {"invoiceId": invoice_id, "amount": 10.05, "currency": "NOK"}
    if key == "payments":
        item["type"] = "DIRECT_PAYMENT"
    return item


WRONG_TYPE = {"string": 12345, "number": "a lot", "boolean": "yes", "array": {}, "object": []}


def violations(request: str, key: str, item: dict[str, Any]) -> list[tuple[str, Any]]:
    """(description, body) for each schema violation derived from the item schema."""
    schema = item_schema(request, key)
    found: list[tuple[str, Any]] = [(f"empty {key}", {key: []})]
    for name in schema.get("required", []):
        broken = copy.deepcopy(item)
        del broken[name]
        found.append((f"{name} missing", {key: [broken]}))
    for name, prop in schema["properties"].items():
        if name not in item:
            continue
        target = SCHEMAS[prop["$ref"].rsplit("/", 1)[1]] if "$ref" in prop else prop
        broken = copy.deepcopy(item)
        if "enum" in target:
            broken[name] = "NOT_A_DOCUMENTED_VALUE"
            found.append((f"{name} outside its enum", {key: [broken]}))
        elif target.get("type") in WRONG_TYPE:
            broken[name] = WRONG_TYPE[target["type"]]
            found.append((f"{name} of the wrong type", {key: [broken]}))
    return found


WRITES = [
    ("invoices", "CreateInvoicesRequest"),
    ("payments", "CreatePaymentsRequest"),
    ("corrections", "CreateCorrectionsRequest"),
]


async def some_invoice_id(api: Api) -> str:
    page = await api.ok(f"{api.org}/invoices", {"PageSize": "1"})
    return page["data"][0]["id"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("key", "request_schema"), WRITES)
async def test_a_body_the_spec_accepts_is_accepted(api: Api, key: str, request_schema: str) -> None:
    body = {key: [valid_item(key, await some_invoice_id(api))]}
    assert not list(validator(request_schema).iter_errors(body))
    status, answer = await api.post(f"{api.org}/{key}", body)
    assert status == 202, answer


@pytest.mark.parametrize(("key", "request_schema"), WRITES)
async def test_every_spec_violation_is_refused_with_422(
    api: Api, key: str, request_schema: str
) -> None:
    item = valid_item(key, await some_invoice_id(api))
    cases = violations(request_schema, key, item)
    assert len(cases) >= 5  # the derivation found something to break
    for description, body in cases:
        assert list(validator(request_schema).iter_errors(body)), description
        status, answer = await api.post(f"{api.org}/{key}", body)
        assert status == 422, (description, status, answer)
        assert answer["status"] == 422
        assert answer["errors"], description
