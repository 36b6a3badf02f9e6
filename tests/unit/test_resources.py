"""resources/*: one method per spec operation, each sending the documented request (method,
path, query wire names and formats, body, headers) and returning the unwrapped model."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

import attrs
import pytest
import yaml
from yarl import URL

from amili_async import AmiliClient, ResponseDecodeError, _serde, models
from amili_async import wire as amili_wire
from amili_async.resources._base import OPERATION_ATTR

from ..conftest import SPEC_PATH
from ._operations import (
    BASE,
    BATCH_JSON,
    INVOICE_JSON,
    NATIONAL_ID,
    NEW_INVOICE_WIRE,
    OPS,
    ORG,
    ORIGIN,
    Op,
    is_invoice,
    new_invoice,
)

ANY_URL = re.compile(re.escape(ORIGIN) + r"/.*")
RESOURCES = (
    "invoices",
    "batches",
    "payments",
    "corrections",
    "collections",
    "settlements",
    "legacy",
)
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
REQUEST_ID = "req-7f3a"


def only_request(m: Any) -> tuple[str, URL, Any]:
    """The one request sent: method, URL (query included) and the recorded call."""
    assert len(m.requests) == 1, list(m.requests)
    ((method, url), calls) = next(iter(m.requests.items()))
    assert len(calls) == 1
    return method, url, calls[0]


def json_body(call: Any) -> Any:
    return json.loads(call.kwargs["data"], parse_float=Decimal)


# --- the spec ----------------------------------------------------------------------------------


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def spec_operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (HTTP method, path template, operation object)."""
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for route, item in spec()["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                assert operation["operationId"] not in found
                found[operation["operationId"]] = (method.upper(), route, operation)
    return found


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def spec_query_names(operation_id: str) -> set[str]:
    _, _, operation = spec_operations()[operation_id]
    params = [resolve(p) for p in operation.get("parameters", [])]
    return {p["name"] for p in params if p["in"] == "query"}


def marked_methods(client: AmiliClient) -> dict[str, list[str]]:
    """operationId -> the "resource.method" names marked with @operation for it."""
    marked: dict[str, list[str]] = {}
    for resource_name in RESOURCES:
        resource = getattr(client, resource_name)
        for name, member in inspect.getmembers(type(resource), inspect.isfunction):
            operation_id = getattr(member, OPERATION_ATTR, None)
            if operation_id is not None:
                marked.setdefault(operation_id, []).append(f"{resource_name}.{name}")
    return marked


async def test_every_spec_operation_has_exactly_one_sdk_method(client: AmiliClient) -> None:
    operations = spec_operations()
    marked = marked_methods(client)
    assert len(operations) == 24
    # Both directions: no operation without a method, no marked method without an operation.
    assert set(marked) == set(operations)
    for operation_id, (_, _, operation) in operations.items():
        assert marked[operation_id] == [operation["x-amili-sdk-method"]], operation_id


# --- one request per operation (the table is in _operations.py) ----------------------------------


def op_id(op: Op) -> str:
    return op.operation_id + ("-no-body" if op.body is None and op.method == "POST" else "")


def test_the_wire_table_covers_every_operation() -> None:
    assert {op.operation_id for op in OPS} == set(spec_operations())


def register(m: Any, op: Op, *, body: Any = ..., status: int | None = None) -> None:
    payload = op.response if body is ... else body
    raw = b"" if payload is None else payload if isinstance(payload, bytes) else None
    getattr(m, op.method.lower())(
        ANY_URL,
        status=op.status if status is None else status,
        body=raw if raw is not None else json.dumps(payload),
        content_type="application/json",
        headers={"X-Amili-Request-Id": REQUEST_ID},
    )


@pytest.mark.parametrize("op", OPS, ids=op_id)
async def test_operation_sends_the_documented_request(
    mocked: Any, client: AmiliClient, op: Op
) -> None:
    register(mocked, op)
    extra = {"idempotency_key": f"idem-{op.operation_id}"} if op.method == "POST" else {}
    result = await op.call(client, extra)
    op.check(result)

    method, url, call = only_request(mocked)
    assert method == op.method
    assert str(url.with_query(None)) == op.url
    assert dict(url.query) == op.query
    assert len(url.query) == len(op.query)  # no parameter twice

    # The same as the spec says: method, path template, query names, body media type, status.
    spec_method, template, operation = spec_operations()[op.operation_id]
    assert spec_method == op.method
    prefix = "" if template.startswith("/webapi/") else "/collection/v1"
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(prefix + template))
    assert re.fullmatch(pattern, url.raw_path), (url.raw_path, template)
    assert set(op.query) == spec_query_names(op.operation_id)
    answer = resolve(operation["responses"][str(op.status)])
    assert bool(answer.get("content")) == (op.response is not None)
    request_body = resolve(operation.get("requestBody", {"required": False}))

    headers = call.kwargs["headers"]
    assert headers["Authorization"] == "Bearer t"
    if op.method == "POST":
        assert headers["IdempotencyKey"] == f"idem-{op.operation_id}"
    else:
        assert "IdempotencyKey" not in headers
    sent = call.kwargs["data"]
    if op.body is None:
        assert not request_body["required"]
        assert sent is None
        assert "Content-Type" not in headers
        return
    media_type = headers["Content-Type"].split(";")[0]
    assert media_type == op.content_type
    assert media_type in request_body["content"]
    if isinstance(op.body, bytes):
        assert op.body in sent
    else:
        assert json_body(call) == op.body
        assert b"null" not in sent  # unset optional fields are left out, not sent as null


@pytest.mark.parametrize(
    "body", [b'{"summary": {"status": "SUCCESS"}}', b"<html>accepted</html>"], ids=["json", "html"]
)
async def test_case_actions_ignore_an_unexpected_answer_body(
    mocked: Any, client: AmiliClient, body: bytes
) -> None:
    mocked.post(ANY_URL, status=202, body=body, repeat=True)
    assert await client.collections.withdraw_case(ORG, "c-1") is None
    assert await client.collections.reject_debt_collection_list(ORG, ["c-1"]) is None


async def test_post_without_a_key_gets_a_fresh_uuid_per_call(
    mocked: Any, client: AmiliClient
) -> None:
    posts = [op for op in OPS if op.method == "POST"]
    for op in posts:
        register(mocked, op)
        register(mocked, op)
        await op.call(client, {})
        await op.call(client, {})
    keys = [
        call.kwargs["headers"]["IdempotencyKey"]
        for calls in mocked.requests.values()
        for call in calls
    ]
    assert len(keys) == 2 * len(posts)
    assert len(set(keys)) == len(keys)
    assert all(uuid.UUID(key).version == 4 for key in keys)


async def test_money_goes_out_as_exact_json_numbers(mocked: Any, client: AmiliClient) -> None:
    register(mocked, OPS[1])
    invoice = attrs.evolve(new_invoice(), original_invoice_amount=Decimal("12345678901234.10"))
    await client.invoices.create(ORG, [invoice])
    _, _, call = only_request(mocked)
    assert b'"originalInvoiceAmount":12345678901234.10,' in call.kwargs["data"]


async def test_per_call_timeout_reaches_the_request(mocked: Any, client: AmiliClient) -> None:
    mocked.get(ANY_URL, payload={"data": INVOICE_JSON})
    await client.invoices.get(ORG, "inv-1", timeout=3.5)
    _, _, call = only_request(mocked)
    assert call.kwargs["timeout"].total == 3.5


async def test_debt_collection_list_refuses_a_single_string(
    mocked: Any, client: AmiliClient
) -> None:
    with pytest.raises(TypeError, match="sequence"):
        await client.collections.accept_debt_collection_list(ORG, "c-1")  # type: ignore[arg-type]
    assert mocked.requests == {}


async def test_unsupported_query_values_are_refused_before_sending(
    mocked: Any, client: AmiliClient
) -> None:
    with pytest.raises(TypeError, match="float"):
        client.invoices.list(ORG, page_size=1.5)  # type: ignore[arg-type]
    assert mocked.requests == {}


async def test_include_closed_true_is_sent_as_lowercase_true(
    mocked: Any, client: AmiliClient
) -> None:
    mocked.get(ANY_URL, payload={})
    await client.legacy.get_batch(include_closed=True)
    _, url, _ = only_request(mocked)
    assert dict(url.query) == {"includeclosed": "true"}


# --- dict input --------------------------------------------------------------------------------


def wire(value: Any) -> Any:
    """A JSON round trip with exact money (numbers read as Decimal): what a caller reading
    rows from JSON exactly holds."""
    return _serde.parse_exact(_serde.dumps(value))


@pytest.mark.parametrize(
    "op", [op for op in OPS if op.operation_id.startswith("Create")], ids=op_id
)
async def test_wire_shaped_dicts_give_the_same_body_as_models(
    mocked: Any, client: AmiliClient, op: Op
) -> None:
    register(mocked, op)
    register(mocked, op)
    await op.call(client, {"idempotency_key": "k"})
    ((_, calls),) = mocked.requests.items()
    from_models = calls[0].kwargs["data"]

    resource = {
        "CreateInvoices": client.invoices,
        "CreatePayments": client.payments,
        "CreateCorrections": client.corrections,
    }[op.operation_id]
    (items,) = op.body.values()
    # Money read from JSON as Decimal keeps its exact digits.
    rows = wire(items)
    assert all(isinstance(row, dict) for row in rows)
    result = await resource.create(ORG, rows, idempotency_key="k")
    op.check(result)
    assert calls[1].kwargs["data"] == from_models


async def test_a_dict_missing_a_required_field_fails_before_sending(
    mocked: Any, client: AmiliClient
) -> None:
    row = wire(NEW_INVOICE_WIRE)
    del row["invoiceNumber"]
    with pytest.raises(ValueError, match="NewInvoice") as caught:
        await client.invoices.create(ORG, [row])
    assert "required field missing" in str(caught.value)
    assert re.search("invoice_?number", str(caught.value), re.IGNORECASE)
    assert mocked.requests == {}


async def test_a_dict_with_a_wrong_type_fails_before_sending(
    mocked: Any, client: AmiliClient
) -> None:
    row = {"invoiceId": "inv-1", "type": "DIRECT_PAYMENT", "amount": [1], "currency": "NOK"}
    with pytest.raises(ValueError, match="NewPayment"):
        await client.payments.create(ORG, [row])
    assert mocked.requests == {}


# --- ids ---------------------------------------------------------------------------------------

ID_CALLS: list[tuple[str, Callable[[AmiliClient, Any], Any]]] = [
    ("invoices.get org", lambda c, bad: c.invoices.get(bad, "i")),
    ("invoices.get id", lambda c, bad: c.invoices.get(ORG, bad)),
    ("invoices.create", lambda c, bad: c.invoices.create(bad, [new_invoice()])),
    ("invoices.list", lambda c, bad: c.invoices.list(bad)),
    ("payments.create", lambda c, bad: c.payments.create(bad, [])),
    ("corrections.create", lambda c, bad: c.corrections.create(bad, [])),
    ("batches.get org", lambda c, bad: c.batches.get(bad, "b")),
    ("batches.get id", lambda c, bad: c.batches.get(ORG, bad)),
    ("batches.get_legacy", lambda c, bad: c.batches.get_legacy(bad)),
    ("batches.list", lambda c, bad: c.batches.list(bad)),
    ("settlements.get org", lambda c, bad: c.settlements.get(bad, "s")),
    ("settlements.get id", lambda c, bad: c.settlements.get(ORG, bad)),
    ("settlements.list", lambda c, bad: c.settlements.list(bad)),
    ("collections.list_cases", lambda c, bad: c.collections.list_cases(bad)),
    ("pause_case org", lambda c, bad: c.collections.pause_case(bad, "c")),
    ("pause_case id", lambda c, bad: c.collections.pause_case(ORG, bad)),
    ("resume_case id", lambda c, bad: c.collections.resume_case(ORG, bad)),
    ("withdraw_case id", lambda c, bad: c.collections.withdraw_case(ORG, bad)),
    ("accept_eviction_request id", lambda c, bad: c.collections.accept_eviction_request(ORG, bad)),
    ("reject_eviction_request id", lambda c, bad: c.collections.reject_eviction_request(ORG, bad)),
    (
        "accept_eviction_confirmation id",
        lambda c, bad: c.collections.accept_eviction_confirmation(ORG, bad),
    ),
    (
        "reject_eviction_confirmation id",
        lambda c, bad: c.collections.reject_eviction_confirmation(ORG, bad),
    ),
    (
        "accept_debt_collection_list",
        lambda c, bad: c.collections.accept_debt_collection_list(bad, []),
    ),
    (
        "reject_debt_collection_list",
        lambda c, bad: c.collections.reject_debt_collection_list(bad, []),
    ),
]


async def run_call(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return await result.collect()


@pytest.mark.parametrize("bad", ["", ".", "..", None, 42], ids=repr)
@pytest.mark.parametrize(("name", "call"), ID_CALLS, ids=[name for name, _ in ID_CALLS])
async def test_invalid_ids_are_refused_before_sending(
    mocked: Any, client: AmiliClient, name: str, call: Callable[[AmiliClient, Any], Any], bad: Any
) -> None:
    with pytest.raises(ValueError, match="ids must be"):
        await run_call(call(client, bad))
    assert mocked.requests == {}


@pytest.mark.parametrize(
    ("raw_id", "segment"),
    [("a/b", "a%2Fb"), ("x?y#z", "x%3Fy%23z"), ("50%", "50%25"), ("æ ø", "%C3%A6%20%C3%B8")],
)
async def test_ids_are_quoted_into_one_path_segment(
    mocked: Any, client: AmiliClient, raw_id: str, segment: str
) -> None:
    mocked.get(ANY_URL, payload={"data": INVOICE_JSON})
    mocked.post(ANY_URL, status=202, body=b"")
    mocked.get(ANY_URL, payload={"data": BATCH_JSON})
    await client.invoices.get(raw_id, raw_id)
    await client.collections.pause_case(ORG, raw_id)
    await client.batches.get_legacy(raw_id)
    paths = [url.raw_path for _, url in mocked.requests]
    assert paths == [
        f"/collection/v1/orgs/{segment}/invoices/{segment}",
        f"/collection/v1/orgs/{ORG}/cases/{segment}/pause",
        f"/collection/v1/batches/{segment}",
    ]


# --- undecodable answers -----------------------------------------------------------------------

BAD_BODIES = {
    "truncated-json": b'{"data": {"id": "' + NATIONAL_ID.encode() + b'", "inv',
    "html": b"<html><body>Debtor " + NATIONAL_ID.encode() + b" not found</body></html>",
    "empty": b"",
    "wrong-type": b'{"data": {"id": "inv-1", "createdAt": "' + NATIONAL_ID.encode() + b'"}}',
    "data-not-object": b'{"data": ["' + NATIONAL_ID.encode() + b'"]}',
    "data-missing": b'{"summary": {"status": "' + NATIONAL_ID.encode() + b'"}}',
    "top-level-array": b'["' + NATIONAL_ID.encode() + b'"]',
    "nested-amount": b'{"data": {"id": "x", "claims": [{"originalAmount": "'
    + NATIONAL_ID.encode()
    + b'x"}]}}',
    "object-for-string": b'{"data": {"id": {"national": "' + NATIONAL_ID.encode() + b'"}}}',
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
async def test_an_undecodable_200_raises_response_decode_error_without_the_body(
    mocked: Any, client: AmiliClient, body: bytes
) -> None:
    mocked.get(ANY_URL, status=200, body=body, headers={"X-Amili-Request-Id": REQUEST_ID})
    with pytest.raises(ResponseDecodeError) as caught:
        await client.invoices.get(ORG, "inv-1")
    error = caught.value
    assert error.status_code == 200
    assert error.request_id == REQUEST_ID
    assert error.method == "GET"
    assert error.url == f"{BASE}/orgs/{ORG}/invoices/inv-1"
    assert REQUEST_ID in str(error)
    assert NATIONAL_ID not in str(error)
    assert NATIONAL_ID not in repr(error)


async def test_an_undecodable_create_answer_raises_response_decode_error(
    mocked: Any, client: AmiliClient
) -> None:
    mocked.post(
        ANY_URL, status=202, body=b'{"data": {"batchUrl": "' + NATIONAL_ID.encode() + b'"}}'
    )
    with pytest.raises(ResponseDecodeError) as caught:
        await client.invoices.create(ORG, [new_invoice()])
    assert caught.value.status_code == 202
    assert NATIONAL_ID not in str(caught.value)


async def drain_ids(pager: Any, seen: list[str]) -> None:
    async for invoice in pager:
        seen.append(invoice.id)


async def test_an_undecodable_listing_page_raises_with_its_resume_token(
    mocked: Any, client: AmiliClient
) -> None:
    mocked.get(ANY_URL, payload={"data": [INVOICE_JSON], "summary": {"nextPageToken": "p2"}})
    mocked.get(ANY_URL, body=b"<html>" + NATIONAL_ID.encode() + b"</html>")
    seen: list[str] = []
    with pytest.raises(ResponseDecodeError) as caught:
        await drain_ids(client.invoices.list(ORG), seen)
    assert seen == ["inv-1"]
    assert caught.value.resume_token == "p2"
    assert NATIONAL_ID not in str(caught.value)


async def test_unknown_enum_values_and_extra_fields_do_not_break_a_listing(
    mocked: Any, client: AmiliClient
) -> None:
    future = {
        **INVOICE_JSON,
        "status": "ON_HOLD",
        "type": "FINAL_DEMAND",
        "claims": [{"type": "PENALTY", "originalAmount": 10, "newField": [1, 2]}],
        "riskScore": {"value": 0.7, "model": "v2"},
    }
    page = {"data": [INVOICE_JSON, future], "summary": {"nextPageToken": None, "pageCount": 9}}
    mocked.get(ANY_URL, payload={**page, "meta": {"x": 1}})
    known, unknown = await client.invoices.list(ORG).collect()
    is_invoice(known)
    assert isinstance(unknown.status, models.InvoiceStatus)
    assert unknown.status == "ON_HOLD"
    assert not unknown.status.is_known
    assert unknown.type == "FINAL_DEMAND"
    assert unknown.claims is not None
    assert unknown.claims[0].type == "PENALTY"
    assert unknown.claims[0].original_amount == Decimal(10)


# --- one rule for dicts and models: money, naive date-times -----------------------------------

WRITES = [op for op in OPS if op.operation_id.startswith("Create")]
AMOUNT = {"CreateInvoices": "originalInvoiceAmount"}  # payments and corrections: "amount"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (12.5, r"a float cannot hold money exactly .*use Decimal"),
        ("12.50", r"expected a Decimal amount, got str"),
    ],
)
@pytest.mark.parametrize("op", WRITES, ids=op_id)
@pytest.mark.parametrize("how", ["create", "create_many"])
async def test_a_dict_with_float_or_text_money_is_refused_like_a_model(
    mocked: Any, client: AmiliClient, op: Op, amount: Any, message: str, how: str
) -> None:
    resource = {
        "CreateInvoices": client.invoices,
        "CreatePayments": client.payments,
        "CreateCorrections": client.corrections,
    }[op.operation_id]
    (items,) = op.body.values()
    field = AMOUNT.get(op.operation_id, "amount")
    row = {**items[0], field: amount}
    # The model refuses the value with this very message...
    cls = resource.item_model
    keywords = _attrs_of(cls, items[0])
    (name,) = [f.name for f in attrs.fields(cls) if f.metadata["wire"] == field]
    with pytest.raises(TypeError, match=message) as by_model:
        cls(**{**keywords, name: amount})
    # ... and so does `create` / `create_many` given a dict, before anything is sent.
    with pytest.raises(TypeError, match=message) as by_dict:
        await (resource.create(ORG, [row]) if how == "create" else _drain(resource, row))
    assert str(by_dict.value).removeprefix("$[0]") == str(by_model.value).removeprefix("$")
    assert mocked.requests == {}


async def _drain(resource: Any, row: dict[str, Any]) -> None:
    async for _ in resource.create_many(ORG, [row]):
        pass


def _attrs_of(cls: type[Any], row: dict[str, Any]) -> dict[str, Any]:
    """Constructor keywords of `cls` from a wire dict (the model read the documented way)."""
    model = amili_wire.from_wire(row, cls)
    return {f.name: getattr(model, f.name) for f in attrs.fields(cls)}


NAIVE = r"a date-time without a timezone: which timezone did you mean\?"
LISTINGS_WITH_DATETIMES = [
    ("From", lambda c, when: c.invoices.list(ORG, from_=when)),
    ("To", lambda c, when: c.invoices.list(ORG, to=when)),
    ("FromCreatedAt", lambda c, when: c.collections.list_cases(ORG, from_created_at=when)),
    ("ToCreatedAt", lambda c, when: c.collections.list_cases(ORG, to_created_at=when)),
    ("fromDate", lambda c, when: c.settlements.list(ORG, from_date=when)),
    ("toDate", lambda c, when: c.settlements.list(ORG, to_date=when)),
]


@pytest.mark.parametrize(
    ("name", "listing"), LISTINGS_WITH_DATETIMES, ids=[name for name, _ in LISTINGS_WITH_DATETIMES]
)
async def test_a_naive_datetime_in_a_listing_is_refused_like_in_a_request(
    mocked: Any, client: AmiliClient, name: str, listing: Callable[[AmiliClient, Any], Any]
) -> None:
    naive = dt.datetime(2024, 3, 1, 12, 0)
    with pytest.raises(ValueError, match=NAIVE) as caught:
        listing(client, naive)
    assert str(caught.value).startswith(f"query parameter {name}: ")
    # The very message a request model gives.
    with pytest.raises(ValueError, match=NAIVE) as by_model:
        attrs.evolve(new_invoice(), due_date=naive)
    assert str(caught.value).partition(": ")[2] == str(by_model.value).partition(": ")[2]
    assert mocked.requests == {}
    # An aware one is sent, as UTC.
    mocked.get(ANY_URL, payload={"data": [], "summary": {}})
    aware = naive.replace(tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert await listing(client, aware).collect() == []
    _, url, _ = only_request(mocked)
    assert url.query[name].startswith("2024-03-01")


@pytest.mark.parametrize("when", [dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 2)])
def test_a_naive_window_of_a_partitioned_listing_is_refused(
    client: AmiliClient, when: dt.datetime
) -> None:
    aware = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match=NAIVE):
        client.invoices.list(ORG, from_=aware, to=when, partitions=4)
