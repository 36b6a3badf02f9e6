from __future__ import annotations

import base64

import pytest

from amili_async.sandbox import SECOND_ORG_ID, SandboxConfig

from ._support import Api, new_invoice


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(invoices=250, batch_delay=0)


def _order(
    items: list[dict[str, str]], key: str = "createdAt", ident: str = "id"
) -> list[tuple[str, str]]:
    return [(x[key], x[ident]) for x in items]


async def test_walk_all_invoices_exactly_once_in_order(api: Api) -> None:
    await api.submit("invoices", {"invoices": [new_invoice(k) for k in range(5)]})
    items, pages = await api.all_pages(f"{api.org}/invoices", {"PageSize": "37"})
    assert len(items) == 255
    assert pages == 7
    assert len({x["id"] for x in items}) == 255
    keys = _order(items)
    assert keys == sorted(keys)
    default = await api.ok(f"{api.org}/invoices")
    assert len(default["data"]) == 100


async def test_filters_are_kept_across_pages(api: Api) -> None:
    everything, _ = await api.all_pages(f"{api.org}/invoices", {"PageSize": "1000"})
    for status_value in ("OPEN", "CLOSED", "PAUSED"):
        paged, _ = await api.all_pages(
            f"{api.org}/invoices", {"Status": status_value, "PageSize": "7"}
        )
        assert paged == [x for x in everything if x["status"] == status_value]
    paged, _ = await api.all_pages(f"{api.org}/invoices", {"Type": "NOTICE", "PageSize": "9"})
    assert paged == [x for x in everything if x["type"] == "NOTICE"]
    assert paged


async def test_exact_match_filters(api: Api) -> None:
    everything, _ = await api.all_pages(f"{api.org}/invoices", {"PageSize": "1000"})
    target = everything[42]
    for name, value in (
        ("InvoiceNumber", target["invoiceNumber"]),
        ("UniqueSourceInvoiceId", target["uniqueSourceInvoiceId"]),
    ):
        page = await api.ok(f"{api.org}/invoices", {name: value})
        assert page["data"] == [target]
    customer = target["debtors"][0]["customerNumber"]
    page = await api.ok(f"{api.org}/invoices", {"CustomerNumber": customer})
    expected = [x for x in everything if x["debtors"][0]["customerNumber"] == customer]
    assert page["data"] == expected
    page = await api.ok(f"{api.org}/invoices", {"InvoiceNumber": "nope"})
    assert page["data"] == []
    assert page["summary"]["nextPageToken"] is None


async def test_from_inclusive_to_exclusive(api: Api) -> None:
    everything, _ = await api.all_pages(f"{api.org}/invoices", {"PageSize": "1000"})
    lo, hi = everything[10]["createdAt"], everything[20]["createdAt"]
    window, _ = await api.all_pages(f"{api.org}/invoices", {"From": lo, "To": hi, "PageSize": "4"})
    assert window == everything[10:20]
    status, _ = await api.get(f"{api.org}/invoices", {"From": "last tuesday"})
    assert status == 400


@pytest.mark.parametrize(
    ("listing", "name"),
    [
        ("invoices", "From"),
        ("invoices", "To"),
        ("cases", "FromCreatedAt"),
        ("settlements", "toDate"),
        ("invoices", "PageSize"),
        ("settlements", "pageSize"),
        ("batches", "SortDirection"),
    ],
)
async def test_an_empty_typed_filter_is_400(api: Api, listing: str, name: str) -> None:
    """An empty value is not the absent parameter: the spec's date, date-time, integer and
    enum refuse it (schemathesis found these accepted)."""
    status, problem = await api.get(f"{api.org}/{listing}", {name: ""})
    assert status == 400
    assert name in problem["errors"]


@pytest.mark.parametrize("size", ["0", "1001", "-1", "ten"])
async def test_bad_page_size_is_400(api: Api, size: str) -> None:
    status, problem = await api.get(f"{api.org}/invoices", {"PageSize": size})
    assert status == 400
    assert "PageSize" in problem["errors"]


async def test_page_size_1000_and_bad_enum(api: Api) -> None:
    status, page = await api.get(f"{api.org}/invoices", {"PageSize": "1000"})
    assert status == 200
    assert len(page["data"]) == 250
    status, problem = await api.get(f"{api.org}/invoices", {"Status": "BROKE"})
    assert status == 400
    assert "Status" in problem["errors"]


async def test_bad_page_tokens_are_400(api: Api) -> None:
    status, page = await api.get(f"{api.org}/invoices", {"PageSize": "10", "Status": "OPEN"})
    token = page["summary"]["nextPageToken"]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[5] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for params in (
        {"PageToken": tampered, "Status": "OPEN"},
        {"PageToken": token},  # filters dropped
        {"PageToken": token, "Status": "CLOSED"},  # other filters
        {"PageToken": "garbage!!", "Status": "OPEN"},
        {"PageToken": token[:-4], "Status": "OPEN"},
    ):
        status, problem = await api.get(f"{api.org}/invoices", params)
        assert status == 400, params
        assert "PageToken" in problem["errors"]
    # Another organisation's listing refuses it too.
    status, _ = await api.get(
        f"{api.org_url(SECOND_ORG_ID)}/invoices", {"PageToken": token, "Status": "OPEN"}
    )
    assert status == 400
    # A token of one listing is not valid for another.
    status, _ = await api.get(f"{api.org}/cases", {"PageToken": token, "Status": "OPEN"})
    assert status == 400
    status, ok = await api.get(
        f"{api.org}/invoices", {"PageToken": token, "Status": "OPEN", "PageSize": "3"}
    )
    assert status == 200
    assert len(ok["data"]) == 3


async def test_pages_are_stable_while_invoices_are_added(api: Api) -> None:
    url = f"{api.org}/invoices"
    first = await api.ok(url, {"PageSize": "100"})
    seen = [x["id"] for x in first["data"]]
    token = first["summary"]["nextPageToken"]
    added = await api.submit("invoices", {"invoices": [new_invoice(k) for k in range(3)]})
    new_ids = {s["invoiceId"] for s in added["succeeded"]}
    while token:
        page = await api.ok(url, {"PageSize": "100", "PageToken": token})
        seen.extend(x["id"] for x in page["data"])
        token = page["summary"]["nextPageToken"]
        if token and len(seen) < 200:
            await api.submit("invoices", {"invoices": [new_invoice(10 + len(seen))]})
    assert len(seen) == len(set(seen))
    assert new_ids <= set(seen)
    org = api.server.state.default_org
    assert len(seen) == org.invoice_count


async def test_batches_listing(api: Api) -> None:
    ids = []
    for k in range(5):
        b = await api.submit(
            "invoices",
            {"invoices": [new_invoice(k)]},
            {"IdempotencyKey": f"k{k}"},
        )
        ids.append(b["batchId"])
    failed = await api.submit("invoices", {"invoices": [new_invoice(0)]})
    asc, pages = await api.all_pages(f"{api.org}/batches", {"PageSize": "2"})
    assert [b["batchId"] for b in asc] == [*ids, failed["batchId"]]
    assert pages == 3
    desc, _ = await api.all_pages(f"{api.org}/batches", {"PageSize": "4", "SortDirection": "DESC"})
    assert [b["batchId"] for b in desc] == [failed["batchId"], *reversed(ids)]
    only_failed, _ = await api.all_pages(f"{api.org}/batches", {"State": "FAILED"})
    assert [b["batchId"] for b in only_failed] == [failed["batchId"]]
    by_key, _ = await api.all_pages(f"{api.org}/batches", {"IdempotencyKey": "k3"})
    assert [b["batchId"] for b in by_key] == [ids[3]]
    none, _ = await api.all_pages(f"{api.org}/batches", {"Type": "PAYMENT"})
    assert none == []
    status, _ = await api.get(f"{api.org}/batches", {"SortDirection": "UP"})
    assert status == 400
    status, page = await api.get(f"{api.org}/batches", {"PageSize": "2"})
    status, _ = await api.get(
        f"{api.org}/batches",
        {"PageToken": page["summary"]["nextPageToken"], "SortDirection": "DESC"},
    )
    assert status == 400


async def test_cases_listing_and_filters(api: Api) -> None:
    cases, pages = await api.all_pages(f"{api.org}/cases", {"PageSize": "60"})
    assert len(cases) == 250
    assert pages == 5
    assert list(cases[0]) == [
        "caseId", "caseNumber", "organizationId", "creditorId", "creditorNumber", "status",
        "subStatus", "type", "description", "registeredAt", "closedAt", "caseToken",
        "invoices", "debtors",
    ]  # fmt: skip
    keys = _order(cases, "registeredAt", "caseId")
    assert [k[0] for k in keys] == sorted(k[0] for k in keys)
    target = cases[77]
    page = await api.ok(f"{api.org}/cases", {"CaseNumber": target["caseNumber"]})
    assert page["data"] == [target]
    usid = target["invoices"][0]["uniqueSourceInvoiceId"]
    page = await api.ok(f"{api.org}/cases", {"UniqueSourceInvoiceId": usid})
    assert page["data"] == [target]
    name = target["debtors"][0]["fullName"]
    found, _ = await api.all_pages(
        f"{api.org}/cases", {"SearchTerm": name.upper(), "PageSize": "5"}
    )
    assert target in found
    assert all(name in [d["fullName"] for d in c["debtors"]] for c in found)
    customer = target["debtors"][0]["customerNumber"]
    found, _ = await api.all_pages(f"{api.org}/cases", {"CustomerNumber": customer})
    assert found == [c for c in cases if c["debtors"][0]["customerNumber"] == customer]
    paused, _ = await api.all_pages(f"{api.org}/cases", {"Status": "PAUSED", "PageSize": "3"})
    assert paused == [c for c in cases if c["status"] == "PAUSED"]
    window, _ = await api.all_pages(
        f"{api.org}/cases",
        {"FromCreatedAt": cases[5]["registeredAt"], "ToCreatedAt": cases[9]["registeredAt"]},
    )
    assert window == cases[5:9]
    subs = {c["subStatus"] for c in cases}
    assert {
        "DEBT_COLLECTION_LIST_MANUAL",
        "EVICTION_REQUESTED",
        "EVICTION_CONFIRMATION_REQUESTED",
    } <= subs
