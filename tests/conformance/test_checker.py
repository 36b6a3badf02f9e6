"""The spec checker finds what it is there to find: an answer off the spec, a status the
operation does not declare, and a sandbox verdict that differs from the spec's."""

from __future__ import annotations

import json
from typing import Any

import orjson
from multidict import CIMultiDict, MultiDict

from . import _spec

SPEC = _spec.load()
ORG = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
INVOICE = "497f6eca-6276-4993-bfeb-53cbbbba6f08"
PROBLEM = {"type": "about:blank", "title": "Bad Request", "status": 400}


def exchange(
    method: str,
    path: str,
    status: int,
    answer: Any,
    *,
    query: dict[str, str] | None = None,
    body: Any = None,
    media: str = "application/json",
) -> tuple[_spec.Operation, dict[str, str], _spec.Exchange]:
    found = SPEC.find(method, "/collection/v1" + path)
    assert found is not None
    headers = CIMultiDict({"Authorization": "Bearer t", "Content-Type": "application/json"})
    answer_headers = CIMultiDict({"X-Amili-Request-Id": "r", "Content-Type": media})
    ex = _spec.Exchange(
        method,
        path,
        MultiDict(query or {}),
        headers,
        json.dumps(body).encode() if body is not None else b"",
        status,
        answer_headers,
        orjson.dumps(answer) if answer is not None else b"",
    )
    return found[0], found[1], ex


def invoice(**over: Any) -> dict[str, Any]:
    return {"summary": {"status": "SUCCESS", "nextPageToken": None},
            "data": {"id": INVOICE, "closedAt": None, **over}}  # fmt: skip


def test_an_answer_that_fits_the_spec_passes() -> None:
    op, _, ex = exchange("GET", f"/orgs/{ORG}/invoices/{INVOICE}", 200, invoice())
    assert SPEC.response_problems(op, ex) == []


def test_an_answer_off_the_spec_is_reported() -> None:
    op, _, ex = exchange("GET", f"/orgs/{ORG}/invoices/{INVOICE}", 200, invoice(closedAt=5))
    (problem,) = SPEC.response_problems(op, ex)
    assert "/data/closedAt" in problem


def test_a_status_the_operation_does_not_declare_is_reported() -> None:
    op, _, ex = exchange(
        "GET", f"/orgs/{ORG}/invoices/{INVOICE}", 418, PROBLEM, media="application/problem+json"
    )
    (problem,) = SPEC.response_problems(op, ex)
    assert problem == "GetInvoiceById 418: status not declared for the operation"


def test_an_error_body_in_the_wrong_media_type_is_reported() -> None:
    op, _, ex = exchange("GET", f"/orgs/{ORG}/invoices/{INVOICE}", 404, PROBLEM)
    assert "media type 'application/json'" in SPEC.response_problems(op, ex)[0]


def test_request_checks_follow_the_parameters_and_the_body() -> None:
    op, params, ex = exchange(
        "GET", f"/orgs/{ORG}/invoices", 200, None, query={"pageToken": "x", "PageSize": "0"}
    )
    found = SPEC.request_problems(op, params, ex)
    assert any("pageToken is not defined" in p for p in found)
    assert any("query PageSize" in p for p in found)
    item = {
        "type": "NOTICE",
        "invoiceNumber": "1",
        "originalInvoiceAmount": 19.99,
        "currency": "NOK",
        "invoiceDate": "2024-01-15T00:00:00Z",
        "dueDate": "2024-02-15T00:00:00Z",
    }
    op, params, ex = exchange("POST", f"/orgs/{ORG}/invoices", 202, None, body={"invoices": [item]})
    assert SPEC.request_problems(op, params, ex) == []  # 19.99 is a multiple of 0.01
    item["originalInvoiceAmount"] = 10.001
    op, params, ex = exchange("POST", f"/orgs/{ORG}/invoices", 202, None, body={"invoices": [item]})
    assert "originalInvoiceAmount" in SPEC.request_problems(op, params, ex)[0]


def test_a_verdict_that_differs_from_the_spec_is_reported() -> None:
    op, _, _ = exchange("GET", f"/orgs/{ORG}/invoices", 200, None)
    assert _spec.agreement(op, ["refused"], 200)
    assert _spec.agreement(op, [], 422)
    assert _spec.agreement(op, [], 400)
    assert not _spec.agreement(op, ["refused"], 400)
    assert not _spec.agreement(op, [], 404)  # an unknown id is not a schema refusal
