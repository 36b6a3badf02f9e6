"""Every request amount of the spec reads the same in the three common validators (issue 21,
D1): a float ``multipleOf: 0.01`` made openapi-core refuse 19.99 and python-jsonschema 11,426
of the two-decimal amounts from 0.00 to 1000.00, while jsonschema-rs (our checker) accepted
them. The sweep runs every such amount through each of them."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
import jsonschema_rs
import openapi_schema_validator
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from . import _spec

# Every two-decimal amount from 0.00 to 1000.00, as a JSON parser reads it (a float).
SWEEP = [float(f"{cents / 100:.2f}") for cents in range(100_001)]
# The amount fields of the write bodies: (schema, property).
AMOUNTS = (("NewInvoice", "originalInvoiceAmount"), ("NewPayment", "amount"),
           ("NewCorrection", "amount"))  # fmt: skip
# openapi-core validates a whole request (~1 ms per item): a sample through it end to end,
# every 97th amount (1,031 of them, 19.99 among the first), the full sweep through the schema
# validator it runs underneath (openapi-schema-validator's OAS 3.1 one).
OPENAPI_CORE_SAMPLE = [19.99, *SWEEP[::97]]
ORG = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def refused(doc: dict[str, Any]) -> dict[str, list[float]]:
    """Per validator, the amounts of the sweep that some amount field of ``doc`` refuses."""
    schemas = doc["components"]["schemas"]
    found: dict[str, list[float]] = {"jsonschema-rs": [], "python-jsonschema": [],
                                     "openapi-schema-validator": []}  # fmt: skip
    distinct = {json.dumps(schemas[n]["properties"][p], sort_keys=True) for n, p in AMOUNTS}
    for text in sorted(distinct):  # the same schema is swept once
        array = {"type": "array", "items": json.loads(text)}
        rs = jsonschema_rs.Draft202012Validator(array)
        found["jsonschema-rs"] += [SWEEP[e.instance_path[0]] for e in rs.iter_errors(SWEEP)]
        readers = {"python-jsonschema": jsonschema.Draft202012Validator,
                   "openapi-schema-validator": openapi_schema_validator.OAS31Validator}  # fmt: skip
        for label, cls in readers.items():
            found[label] += [SWEEP[e.path[0]] for e in cls(array).iter_errors(SWEEP)]
    return found


@cache
def openapi_core_api(doc_json: str) -> OpenAPI:
    return OpenAPI.from_dict(json.loads(doc_json))


def openapi_core_refuses(doc: dict[str, Any], amounts: list[float]) -> bool:
    """Whether openapi-core refuses a CreatePayments request carrying these amounts."""
    items = [{"invoiceId": ORG, "type": "DIRECT_PAYMENT", "amount": a, "currency": "NOK"}
             for a in amounts]  # fmt: skip
    request = MockRequest(
        "https://api.staging.amili.no",
        "post",
        f"/collection/v1/orgs/{ORG}/payments",
        data=json.dumps({"payments": items}).encode(),
        content_type="application/json",
        headers={"Authorization": "Bearer t"},
    )
    try:
        openapi_core_api(json.dumps(doc)).validate_request(request)
    except Exception:  # openapi-core's validation errors share no public base
        return True
    return False


def test_every_two_decimal_amount_passes_every_validator() -> None:
    doc = _spec.load().doc
    assert refused(doc) == {"jsonschema-rs": [], "python-jsonschema": [],
                            "openapi-schema-validator": []}  # fmt: skip
    assert not openapi_core_refuses(doc, OPENAPI_CORE_SAMPLE)
    assert openapi_core_refuses(doc, ["19.99"])  # type: ignore[list-item]  # it does validate
