"""Mutation tests of the conformance suite (issue 21): a loosened spec or a broken sandbox
must make some check fail, or the checks only ever prove what they were written to pass.

Each test mutates a copy of the spec dict (or monkeypatches the sandbox), runs the check that
should see it, in process, and asserts that it fails; the unmutated run passes, so a failure
is the mutation's."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from amili_async.sandbox import SandboxConfig, SandboxServer, _app, _records
from tests import test_spec_docs
from tests.sandbox._support import Api

from . import _spec, test_amounts

ORIGINAL = _spec.load().doc
INVOICE_BY_ID = "/orgs/{organizationId}/invoices/{invoiceId}"


def mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(ORIGINAL)
    change(doc)
    return doc


@pytest.fixture
def docs_spec(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], None]:
    """Points the docs-anchored checks at a (mutated) spec dict."""
    return lambda doc: monkeypatch.setattr(test_spec_docs, "SPEC", doc)


def docs_checks() -> None:
    """Every check of tests/test_spec_docs.py, over every docs operation."""
    t = test_spec_docs
    for op in t.docs_operations():
        if not op.sheet.startswith("guide-"):
            t.test_every_docs_operation_is_in_the_spec_by_name_method_and_path(op)
    for op in t.sheet_operations():
        t.test_every_query_name_of_a_curl_sample_is_a_query_parameter(op)
        t.test_every_listed_status_is_declared_and_every_other_is_marked(op)
        t.test_every_field_a_page_shows_is_in_the_operations_schemas(op)
    t.test_every_enum_value_the_docs_list_is_a_documented_value()
    t.test_the_complete_get_invoice_by_id_example_is_embedded_as_published()


# --------------------------------------------------------------------------- the spec
def set_schema(doc: dict[str, Any]) -> None:
    ok = doc["paths"][INVOICE_BY_ID]["get"]["responses"]["200"]["content"]["application/json"]
    ok["schema"] = {}


def enum_to_string(doc: dict[str, Any]) -> None:
    schema = doc["components"]["schemas"]["InvoiceType"]
    for key in ("enum", "x-amili-documented-values", "x-amili-inferred"):
        schema.pop(key)


def drop_status(doc: dict[str, Any]) -> None:
    del doc["paths"][INVOICE_BY_ID]["get"]["responses"]["409"]


def rename_query(doc: dict[str, Any]) -> None:
    doc["components"]["parameters"]["pageSizeQuery"]["name"] = "PageSize"


@pytest.mark.parametrize(
    "change",
    [set_schema, enum_to_string, drop_status, rename_query],
    ids=["body schema {}", "enum a plain string", "a status removed", "query casing"],
)
def test_a_loosened_spec_fails_the_docs_checks(
    docs_spec: Callable[[dict[str, Any]], None], change: Callable[[dict[str, Any]], None]
) -> None:
    docs_spec(ORIGINAL)
    docs_checks()  # the spec as it is passes
    docs_spec(mutated(change))
    with pytest.raises(AssertionError):
        docs_checks()


def test_a_float_multiple_of_fails_the_amount_sweep() -> None:
    def cents(doc: dict[str, Any]) -> None:
        doc["components"]["schemas"]["NewPayment"]["properties"]["amount"]["multipleOf"] = 0.01

    assert not any(test_amounts.refused(ORIGINAL).values())
    found = test_amounts.refused(mutated(cents))
    assert found["jsonschema-rs"] == []  # the checker alone would not have seen it
    assert 19.99 in found["openapi-schema-validator"]
    assert len(found["python-jsonschema"]) > 10_000


# --------------------------------------------------------------------------- the sandbox
async def conformance_log(spec: _spec.Spec, calls: list[tuple[str, str, Any]]) -> _spec.Log:
    """The checker's log of these calls (method, path under the API, JSON body) against a
    fresh sandbox checked with ``spec``."""
    log = _spec.Log()
    server = SandboxServer(SandboxConfig(invoices=5, batch_delay=0.01))
    _spec.install(server.app, log, spec)
    async with server, aiohttp.ClientSession() as session:
        api = Api(server, session)
        await api.login()
        invoice = (await api.ok(f"{api.org}/invoices"))["data"][0]["id"]
        for method, path, body in calls:
            url = api.org + path.format(invoice=invoice)
            async with session.request(method, url, json=body, headers=api.headers()) as resp:
                await resp.read()
    return log


PAYMENT = {
    "invoiceId": "00000000-0000-4000-8000-000000000000",
    "type": "DIRECT_PAYMENT",
    "currency": "NOK",
}  # fmt: skip  (no amount)
CALLS = [("GET", "/invoices/{invoice}", None), ("POST", "/payments", {"payments": [PAYMENT]})]


@pytest.fixture
async def clean_log() -> _spec.Log:
    return await conformance_log(_spec.load(), CALLS)


async def test_the_unbroken_sandbox_passes_the_checker(clean_log: _spec.Log) -> None:
    assert clean_log.problems == []
    assert [status for _, status, _ in clean_log.seen][-2:] == [200, 422]


async def test_a_required_list_removed_fails_the_agreement_check() -> None:
    def loosen(doc: dict[str, Any]) -> None:
        del doc["components"]["schemas"]["NewPayment"]["required"]

    log = await conformance_log(_spec.Spec(mutated(loosen)), CALLS)
    assert log.problems == ["CreatePayments: answered 422 to a request the spec accepts"]


async def test_a_dropped_documented_field_fails_the_checker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice_dict = _records.InvoiceRecord.invoice_dict

    def without_number(self: _records.InvoiceRecord) -> dict[str, Any]:
        data = invoice_dict(self)
        del data["invoiceNumber"]
        return data

    monkeypatch.setattr(_records.InvoiceRecord, "invoice_dict", without_number)
    log = await conformance_log(_spec.load(), CALLS[:1])
    assert log.problems == [
        "GetInvoiceById 200: the documented field data.invoiceNumber is missing"
    ]


async def test_an_undeclared_status_fails_the_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    async def teapot(request: web.Request) -> web.Response:
        return web.json_response({"title": "teapot"}, status=418)

    monkeypatch.setattr(_app, "get_invoice", teapot)
    log = await conformance_log(_spec.load(), CALLS[:1])
    assert log.problems == ["GetInvoiceById 418: status not declared for the operation"]
