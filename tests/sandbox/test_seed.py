from __future__ import annotations

import re

import aiohttp
import orjson
import pytest

from amili_async.sandbox import SandboxConfig, SandboxServer, seed_invoices
from amili_async.sandbox._norway import (
    kid_is_valid,
    luhn_digit,
    national_id_is_valid,
    org_number_is_valid,
)
from amili_async.sandbox._records import InvoiceRecord
from amili_async.sandbox._seed import SeededInvoices
from amili_async.sandbox._wire import dumps

from ._support import Api


def test_check_digit_helpers() -> None:
    assert luhn_digit("7992739871") == "3"
    assert kid_is_valid("79927398713")
    assert not kid_is_valid("79927398710")
    assert org_number_is_valid("912345688")
    assert national_id_is_valid("12858512059")


def test_seed_is_deterministic_per_seed() -> None:
    a = [seed_invoices(300, 5).invoice_json(i) for i in range(300)]
    b = [seed_invoices(300, 5).invoice_json(i) for i in range(300)]
    c = [seed_invoices(300, 6).invoice_json(i) for i in range(300)]
    assert a == b
    assert a != c
    assert (
        seed_invoices(300, 5).record(17).case_dict() == seed_invoices(300, 5).record(17).case_dict()
    )


def test_fast_path_equals_the_record() -> None:
    s = seed_invoices(2000, 3)
    for i in range(2000):
        assert s.invoice_json(i) == dumps(s.record(i).invoice_dict()).decode()


def test_ids_and_numbers_map_back_to_the_index() -> None:
    s = seed_invoices(1000, 9)
    for i in (0, 1, 499, 999):
        r = s.record(i)
        assert s.index_of_invoice_id(r.id) == i
        assert s.index_of_invoice_id(r.id.upper()) == i
        assert s.index_of_case_id(r.case_id) == i
        assert s.index_of_invoice_number(r.invoice_number) == i
        assert s.index_of_usid(r.usid or "") == i
        assert s.index_of_case_number(r.case_number) == i
    other = seed_invoices(1000, 10)
    assert other.index_of_invoice_id(s.invoice_id(5)) is None
    assert s.index_of_invoice_id("00000000-0000-4000-8000-000000000000") is None
    assert s.index_of_usid("erp-order-0001001") is None
    assert len({s.invoice_id(i) for i in range(1000)}) == 1000


def test_data_looks_norwegian() -> None:
    s = seed_invoices(400, 11)
    kinds = set()
    for i in range(400):
        inv = orjson.loads(s.invoice_json(i))
        assert inv["currency"] == "NOK"
        assert kid_is_valid(inv["ocrReferenceNumber"])
        assert inv["createdAt"] < inv["closedAt"] if inv["closedAt"] else True
        assert inv["invoiceDate"] < inv["dueDate"]
        (d,) = inv["debtors"]
        kinds.add(d["type"])
        phone = d["phoneNumbers"][0]
        assert re.fullmatch(r"\+47[49]\d{7}", phone["value"])
        assert phone["countryCode"] == "+47"
        address = d["addresses"][0]
        assert re.fullmatch(r"\d{4}", address["zipCode"])
        assert address["countryCode"] == "NO"
        if d["type"] == "PRIVATE":
            assert national_id_is_valid(d["identificationNumber"])
            assert d["name"] == f"{d['firstname']} {d['lastname']}"
            assert d["dateOfBirth"][2:4] == d["identificationNumber"][4:6]
        else:
            assert org_number_is_valid(d["organizationNumber"])
            assert d["identificationNumber"] is None
    assert kinds == {"PRIVATE", "COMPANY"}
    statuses = {s.record(i).status for i in range(400)}
    assert statuses == {"OPEN", "PAUSED", "CLOSED", "WITHDRAWN"}


async def test_seed_one_million_invoices_and_serve_pages(
    session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real benchmark size: seeding is columnar (no invoice is rendered), and a page
    renders only its own invoices. Counted, not timed: a loaded machine changes nothing."""
    rendered: list[int] = []
    built: list[int] = []
    render, build = SeededInvoices.invoice_json, SeededInvoices.record

    def counting_render(self: SeededInvoices, i: int) -> str:
        rendered.append(i)
        return render(self, i)

    def counting_build(self: SeededInvoices, i: int) -> InvoiceRecord:
        built.append(i)
        return build(self, i)

    monkeypatch.setattr(SeededInvoices, "invoice_json", counting_render)
    monkeypatch.setattr(SeededInvoices, "record", counting_build)
    async with SandboxServer(SandboxConfig(invoices=1_000_000)) as server:
        assert (rendered, built) == ([], [])  # seeding a million builds no invoice
        api = Api(server, session)
        await api.login()
        url = f"{api.org}/invoices"
        status, page = await api.get(url, {"PageSize": "1000"})
        token = page["summary"]["nextPageToken"]
        ids = [x["id"] for x in page["data"]]
        for _ in range(4):
            status, page = await api.get(url, {"PageSize": "1000", "PageToken": token})
            assert status == 200
            ids.extend(x["id"] for x in page["data"])
            token = page["summary"]["nextPageToken"]
        assert len(set(ids)) == 5000
        # Five pages rendered their 5000 invoices (the first 5000, in order) and nothing more.
        assert rendered == list(range(5000))
        assert built == []
        # The end of the range, and a filtered probe deep inside it.
        last_id = server.state.default_org.seeded.invoice_id(999_999)  # type: ignore[union-attr]
        status, one = await api.get(f"{url}/{last_id}")
        assert one["data"]["invoiceNumber"].endswith("-1000000")
        status, hit = await api.get(url, {"UniqueSourceInvoiceId": "erp-order-0777777"})
        assert [x["uniqueSourceInvoiceId"] for x in hit["data"]] == ["erp-order-0777777"]
