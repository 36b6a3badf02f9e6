"""The spec checker finds what it is there to find: an answer off the spec, a status the
operation does not declare, and a sandbox verdict that differs from the spec's."""

from __future__ import annotations

import copy
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
    """The docs' complete GetInvoiceById example (as the spec embeds it), fields overridden."""
    op = next(o for o in SPEC.operations if o.op_id == "GetInvoiceById")
    media = SPEC.response(op, 200)["content"]["application/json"]  # type: ignore[index]
    answer = copy.deepcopy(media["examples"]["example1"]["value"])
    answer["data"].update({"id": INVOICE, "closedAt": None, **over})
    return answer  # type: ignore[no-any-return]


def test_an_answer_that_fits_the_spec_passes() -> None:
    op, _, ex = exchange("GET", f"/orgs/{ORG}/invoices/{INVOICE}", 200, invoice())
    assert SPEC.response_problems(op, ex) == []


def test_an_answer_off_the_spec_is_reported() -> None:
    op, _, ex = exchange("GET", f"/orgs/{ORG}/invoices/{INVOICE}", 200, invoice(closedAt=5))
    # jsonschema-rs always; python-jsonschema too when this is the first answer of its kind
    # the process checks (a sample): which it is depends on the tests run before this one.
    first, *second = SPEC.response_problems(op, ex)
    assert "/data/closedAt" in first
    assert len(second) <= 1
    assert all("(python-jsonschema) at /data/closedAt" in p for p in second)


def test_the_second_validator_reads_the_same_schema() -> None:
    op, _, _ = exchange("GET", f"/orgs/{ORG}/invoices/{INVOICE}", 200, None)
    schema = SPEC.response(op, 200)["content"]["application/json"]["schema"]  # type: ignore[index]
    (problem,) = SPEC.second_errors(schema, invoice(closedAt=5), "x")
    assert "(python-jsonschema) at /data/closedAt" in problem
    assert SPEC.second_errors(schema, invoice(), "x") == []


def test_a_documented_field_the_answer_drops_is_reported() -> None:
    answer = invoice()
    del answer["data"]["invoiceNumber"]
    del answer["data"]["debtors"][0]["emails"][0]["value"]
    op, _, ex = exchange("GET", f"/orgs/{ORG}/invoices/{INVOICE}", 200, answer)
    assert SPEC.response_problems(op, ex) == [
        "GetInvoiceById 200: the documented field data.debtors.[].emails.[].value is missing",
        "GetInvoiceById 200: the documented field data.invoiceNumber is missing",
    ]
    answer["data"]["debtors"] = []  # an empty array has no items to show fields of
    op, _, ex = exchange("GET", f"/orgs/{ORG}/invoices/{INVOICE}", 200, answer)
    assert len(SPEC.response_problems(op, ex)) == 1


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
    assert SPEC.request_problems(op, params, ex) == []
    item["originalInvoiceAmount"] = 10.001  # no precision is published: the spec accepts it
    op, params, ex = exchange("POST", f"/orgs/{ORG}/invoices", 202, None, body={"invoices": [item]})
    assert SPEC.request_problems(op, params, ex) == []
    item["originalInvoiceAmount"] = "10"
    op, params, ex = exchange("POST", f"/orgs/{ORG}/invoices", 202, None, body={"invoices": [item]})
    assert "originalInvoiceAmount" in SPEC.request_problems(op, params, ex)[0]


def test_a_verdict_that_differs_from_the_spec_is_reported() -> None:
    op, _, _ = exchange("GET", f"/orgs/{ORG}/invoices", 200, None)
    assert _spec.agreement(op, ["refused"], 200)
    assert _spec.agreement(op, [], 422)
    assert _spec.agreement(op, [], 400)
    assert not _spec.agreement(op, ["refused"], 400)
    assert not _spec.agreement(op, [], 404)  # an unknown id is not a schema refusal


def problem(errors: dict[str, list[str]]) -> bytes:
    return orjson.dumps({**PROBLEM, "errors": errors})


def test_a_sandbox_refusal_agrees_only_as_documented() -> None:
    op, _, _ = exchange("POST", f"/orgs/{ORG}/invoices", 422, None)
    amount = {
        "invoices[0].originalInvoiceAmount": ["The amount must have at most 2 decimal places."]
    }
    assert _spec.documented_refusal(422, problem(amount)) == [
        "Amounts have at most two decimals and stay below 10^12"
    ]
    assert not _spec.agreement(op, [], 422, problem(amount))
    assert _spec.documented_refusal(400, problem(amount)) == []  # another status: undocumented
    other = {**amount, "invoices[0].type": ["'X' is not one of: NOTICE."]}
    assert _spec.agreement(op, [], 422, problem(other))  # one unexplained field is enough
    assert _spec.agreement(op, [], 422, b"not json")


def test_every_sandbox_only_rule_is_documented_in_design() -> None:
    text = _spec.DESIGN_PATH.read_text(encoding="utf-8")
    section = text.split(_spec.SANDBOX_ONLY_HEADING, 1)[1].split("\n## ", 1)[0]
    for rule in _spec.SANDBOX_ONLY:
        assert f"**{rule.name}**" in section, rule.name
