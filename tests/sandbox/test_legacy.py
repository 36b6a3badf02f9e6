from __future__ import annotations

import json
import re

import aiohttp
import yaml

from amili_async.sandbox import SandboxConfig, SandboxServer
from amili_async.sandbox._shape import NULLABLE, UUIDS
from tests.conftest import SPEC_PATH

from ._support import Api, loads


async def test_ping(api: Api) -> None:
    url = f"{api.server.origin}/webapi/api/Ping"
    async with api.session.get(url, headers=api.headers()) as resp:
        assert resp.status == 200
        assert await resp.json() == {"message": "pong"}
        assert resp.headers["X-Amili-Request-Id"]
    async with api.session.get(url) as resp:  # Bearer, as every other legacy call (the spec)
        assert resp.status == 401


async def test_get_batch(api: Api) -> None:
    url = f"{api.server.origin}/webapi/api/Batch"
    status, batch = await api.get(url)
    assert status == 200
    assert list(batch) == ["batchid", "offline", "creditor", "case", "settlement"]
    assert batch["offline"] is False
    assert [c["idnumber"] for c in batch["creditor"]] == ["912345688", "987654325"]
    assert all(c["status"] in ("OPEN", "PAUSED") for c in batch["case"])
    assert batch["case"][0]["caseNumber"] == "5000001"
    status, closed = await api.get(url, {"includeclosed": "true"})
    assert len(closed["case"]) == 50
    assert len(batch["case"]) < 50
    status, other = await api.get(url, {"creditorid": "987654325", "includeclosed": "true"})
    assert [c["fullname"] for c in other["creditor"]] == ["Fjellheim Utleie AS"]
    assert other["case"] == []
    customer = closed["case"][0]["debtors"][0]["customerNumber"]
    status, mine = await api.get(url, {"customerref": customer, "includeclosed": "true"})
    assert mine["case"]
    assert all(c["debtors"][0]["customerNumber"] == customer for c in mine["case"])
    status, _ = await api.get(url, {"includeclosed": "maybe"})
    assert status == 400


async def test_get_batch_settlements_after_last_settlement_id(api: Api) -> None:
    url = f"{api.server.origin}/webapi/api/Batch"
    page = await api.ok(f"{api.org}/invoices", {"Status": "OPEN", "PageSize": "2"})
    payments = [
        {"invoiceId": inv["id"], "type": "DIRECT_PAYMENT", "amount": 1, "currency": "NOK"}
        for inv in page["data"]
    ]
    await api.submit("payments", {"payments": payments})
    batch = await api.ok(url)
    assert len(batch["settlement"]) == 2
    first = batch["settlement"][0]["settlementId"]
    last = batch["creditor"][0]["lastsettlementid"]
    assert last == batch["settlement"][1]["settlementId"]
    after = await api.ok(url, {"lastsettlementid": first})
    assert [s["settlementId"] for s in after["settlement"]] == [last]


async def test_legacy_batch_limit(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxConfig(invoices=300, legacy_batch_limit=25)) as server:
        api = Api(server, session)
        await api.login()
        batch = await api.ok(f"{server.origin}/webapi/api/Batch")
        assert len(batch["case"]) == 25


async def test_post_batch(api: Api) -> None:
    url = f"{api.server.origin}/webapi/api/Batch"
    body = b'{"batchid": "mine", "offline": true, "creditor": [], "case": [], "settlement": []}'
    for ctype in ("application/json-patch+json", "application/json"):
        async with api.session.post(
            url, data=body, params={"senderid": "x"}, headers=api.headers({"Content-Type": ctype})
        ) as resp:
            assert resp.status == 200
            echoed = loads(await resp.text())
        assert echoed["batchid"] != "mine"
        assert echoed["offline"] is True
        assert api.server.state.legacy_batches[echoed["batchid"]] == echoed
    async with api.session.post(
        url, data=body, headers=api.headers({"Content-Type": "text/plain"})
    ) as resp:
        assert resp.status == 415
    async with api.session.post(
        url, data=b"[1]", headers=api.headers({"Content-Type": "application/json"})
    ) as resp:
        assert resp.status == 400  # the legacy API answers a body off its model with 400
    async with api.session.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 401


async def test_attachment_upload(api: Api) -> None:
    url = f"{api.server.origin}/webapi/api/Attachment"
    cases = await api.ok(f"{api.org}/cases", {"PageSize": "1"})
    case_id = cases["data"][0]["caseId"]
    form = aiohttp.FormData()
    form.add_field("file", b"%PDF-1.4 fake", filename="faktura.pdf", content_type="application/pdf")
    async with api.session.post(
        url, data=form, params={"caseid": case_id}, headers=api.headers()
    ) as resp:
        assert resp.status == 200
        answer = await resp.json()
    stored = api.server.state.attachments[answer["attachmentid"]]
    assert stored["filename"] == "faktura.pdf"
    assert stored["size"] == len(b"%PDF-1.4 fake")
    assert stored["caseid"] == case_id
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x.txt")
    async with api.session.post(url, data=form, headers=api.headers()) as resp:
        assert resp.status == 400
    form = aiohttp.FormData()
    form.add_field("file", b"x", filename="x.txt")
    async with api.session.post(
        url,
        data=form,
        params={"caseid": "00000000-0000-4000-8000-000000000000"},
        headers=api.headers(),
    ) as resp:
        assert resp.status == 404
    async with api.session.post(url, data=b"raw", headers=api.headers()) as resp:
        assert resp.status == 400


async def test_post_batch_checks_the_shape_of_the_body(api: Api) -> None:
    """The body is stored as sent, so its JSON types are checked against the spec's model:
    both generations of case[] pass, a type the spec refuses answers 400 naming the field."""
    url = f"{api.server.origin}/webapi/api/Batch"
    headers = api.headers({"Content-Type": "application/json-patch+json"})
    cases = [{"caseNumber": 0, "invoices": [{"currency": {}}]}, {"casenumber": "7", "history": []}]
    good = {"batchid": "x", "case": cases, "settlement": [{"casenumber": "7"}]}
    async with api.session.post(url, json=good, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    bad = {
        "offline": 1,
        "creditor": [{"vattype": True, "contact": []}],
        "case": [{"caseNumber": 1.5, "history": {}}],
    }
    async with api.session.post(url, json=bad, headers=headers) as resp:
        assert resp.status == 400
        problem = loads(await resp.text())
    assert set(problem["errors"]) == {
        "offline",
        "creditor[0].vattype",
        "creditor[0].contact",
        "case[0].caseNumber",
        "case[0].history",
    }


async def test_a_multipart_body_that_cannot_be_read_answers_400(api: Api) -> None:
    """A part header aiohttp cannot parse (schemathesis found a 500 here) is the client's
    mistake: 400, never a server error."""
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="\x10"\r\n\r\nx\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    headers = api.headers({"Content-Type": f"multipart/form-data; boundary={boundary}"})
    url = f"{api.server.origin}/webapi/api/Attachment"
    async with api.session.post(url, data=body, headers=headers) as resp:
        assert resp.status == 400, await resp.text()


def test_the_tables_of_the_shape_check_are_the_specs() -> None:
    """NULLABLE and UUIDS list exactly the properties the spec lets be null and gives format
    uuid in the LegacyBatch model (the generated models carry neither)."""
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    found: set[tuple[str, str]] = set()
    uuids: set[tuple[str, str]] = set()
    todo, seen = ["LegacyBatch"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for prop, schema in schemas[name].get("properties", {}).items():
            text = json.dumps(schema)
            todo += [ref.rsplit("/", 1)[1] for ref in re.findall(r'"\$ref": "([^"]+)"', text)]
            kinds = schema.get("type")
            if '"null"' in text and (kinds is None or "null" in kinds):
                found.add((name, prop))
            if schema.get("format") == "uuid":
                uuids.add((name, prop))
    assert found == NULLABLE
    assert uuids == UUIDS


async def test_a_null_uuid_or_date_the_spec_does_not_allow_answers_400(api: Api) -> None:
    url = f"{api.server.origin}/webapi/api/Batch"
    headers = api.headers({"Content-Type": "application/json-patch+json"})
    body = {
        "settlement": [{"casenumber": None, "settlementId": "7", "settlementDate": "2024-1-5"}],
        "creditor": [{"parentidnumber": None}],
        "case": [{"closedAt": None, "caseId": "00000000-0000-4000-8000-000000000000"}],
    }
    async with api.session.post(url, json=body, headers=headers) as resp:
        assert resp.status == 400
        problem = loads(await resp.text())
    assert set(problem["errors"]) == {
        "settlement[0].casenumber",
        "settlement[0].settlementId",
        "settlement[0].settlementDate",
    }


async def test_a_stored_batch_echoes_an_integer_beyond_64_bits_exactly(api: Api) -> None:
    """JSON integers have no limit and the spec sets none (schemathesis found a 500 here)."""
    url = f"{api.server.origin}/webapi/api/Batch"
    headers = api.headers({"Content-Type": "application/json"})
    body = b'{"creditor": [{"vattype": 123456789012345678901234567890}]}'
    async with api.session.post(url, data=body, headers=headers) as resp:
        assert resp.status == 200
        assert b'"vattype":123456789012345678901234567890' in await resp.read()
