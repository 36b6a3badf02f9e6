"""Every body the sandbox answers to a GET validates against the spec's response schema for
that operation and status (issue 11, "Spec truth"): in particular every property the sandbox
sends as ``null`` is declared nullable in the spec."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml
from jsonschema import Draft202012Validator

from amili_async.sandbox import SandboxConfig, SandboxServer
from tests.conftest import SPEC_PATH
from tests.sandbox._support import Api, new_invoice

SPEC = yaml.safe_load(SPEC_PATH.read_text())
API_PREFIX = "/collection/v1"


def response_schema(path: str, status: int) -> dict[str, Any]:
    """The JSON schema of ``GET path`` answering ``status``, with the components attached."""
    responses = SPEC["paths"][path]["get"]["responses"]
    response = responses[str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    content = response["content"]
    media = content.get("application/json") or next(iter(content.values()))
    return {**media["schema"], "components": SPEC["components"]}


def problems(path: str, status: int, body: Any) -> list[str]:
    validator = Draft202012Validator(response_schema(path, status))
    return [
        f"{path} {status} at /{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(body)
    ]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with (
        SandboxServer(SandboxConfig(invoices=300, batch_delay=0.01)) as server,
        aiohttp.ClientSession() as session,
    ):
        client = Api(server, session)
        await client.login()
        yield client


async def collect(api: Api) -> list[tuple[str, int, Any]]:
    """(spec path, status, body) for every GET operation, over every page and object."""
    org, origin = api.org, api.server.origin
    out: list[tuple[str, int, Any]] = []

    async def get(spec_path: str, url: str, params: Any = None) -> Any:
        status, body = await api.get(url, params)
        out.append((spec_path, status, body))
        return body

    async def pages(spec_path: str, url: str, size: str, token: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query = {size: "100"}
        while True:
            body = await get(spec_path, url, query)
            items.extend(body["data"])
            if not body["summary"]["nextPageToken"]:
                return items
            query = {size: "100", token: body["summary"]["nextPageToken"]}

    # Writes first, so batches of every type and closed cases exist.
    first = (await api.ok(f"{org}/invoices", {"PageSize": "1"}))["data"][0]
    await api.submit("invoices", {"invoices": [new_invoice(1)]})
    await api.submit(
        "payments",
        {
            "payments": [
                {
                    "invoiceId": first["id"],
                    "amount": 10.05,
                    "currency": "NOK",
                    "type": "DIRECT_PAYMENT",
                }
            ]
        },
    )
    await api.submit(
        "corrections",
        {"corrections": [{"invoiceId": first["id"], "amount": 1, "currency": "NOK"}]},
    )
    status, _ = await api.post(f"{org}/invoices", {"invoices": [{"type": "NOTICE"}]})
    assert status == 422
    cases = (await api.ok(f"{org}/cases", {"PageSize": "100", "Status": "OPEN"}))["data"]
    for case, action in zip(cases, ("pause", "withdraw"), strict=False):
        status, answer = await api.post(f"{org}/cases/{case['caseId']}/{action}")
        assert status == 202, answer

    P = "/orgs/{organizationId}"
    invoices = await pages(P + "/invoices", f"{org}/invoices", "PageSize", "PageToken")
    for inv in invoices[:: max(1, len(invoices) // 40)]:
        await get(P + "/invoices/{invoiceId}", f"{org}/invoices/{inv['id']}")
    await get(P + "/invoices/{invoiceId}", f"{org}/invoices/00000000-0000-0000-0000-000000000000")
    batches = await pages(P + "/batches", f"{org}/batches", "PageSize", "PageToken")
    for b in batches:
        await get(P + "/batches/{batchId}", f"{org}/batches/{b['batchId']}")
        await get("/batches/{batchId}", f"{api.server.base_url}/batches/{b['batchId']}")
    settlements = await pages(P + "/settlements", f"{org}/settlements", "pageSize", "pageToken")
    for s in settlements:
        await get(P + "/settlements/{settlementId}", f"{org}/settlements/{s['settlementId']}")
    await pages(P + "/cases", f"{org}/cases", "PageSize", "PageToken")
    await get("/webapi/api/Ping", f"{origin}/webapi/api/Ping")
    await get("/webapi/api/Batch", f"{origin}/webapi/api/Batch")
    await get("/webapi/api/Batch", f"{origin}/webapi/api/Batch", {"includeclosed": "true"})
    return out


async def test_every_get_response_validates_against_the_spec(api: Api) -> None:
    answers = await collect(api)
    assert len({path for path, _, _ in answers}) == sum(
        "get" in item for item in SPEC["paths"].values()
    ), "some GET operation was not exercised"
    found: list[str] = []
    for path, status, body in answers:
        found.extend(problems(path, status, body))
    assert not found, "\n".join(sorted(set(found))[:200])
