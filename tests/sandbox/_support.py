"""Raw-HTTP helpers for the sandbox tests (no SDK)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from amili_async.sandbox import BATCH_COMPLETED, SandboxServer

TIMEOUT = 5.0


def _default(obj: object) -> Any:
    if isinstance(obj, Decimal):
        return orjson.Fragment(str(obj).encode())
    raise TypeError(type(obj).__name__)


def dumps(obj: Any) -> bytes:
    """JSON with Decimal as exact numbers (4500.10 stays 4500.10)."""
    return orjson.dumps(obj, default=_default)


def loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


class Api:
    """A logged-in raw HTTP client for one SandboxServer."""

    def __init__(self, server: SandboxServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.token = ""

    @property
    def org(self) -> str:
        return f"{self.server.base_url}/orgs/{self.server.default_org_id}"

    def org_url(self, org_id: str) -> str:
        return f"{self.server.base_url}/orgs/{org_id}"

    async def login(self, client_id: str | None = None, secret: str | None = None) -> str:
        async with self.session.post(
            self.server.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": client_id or self.server.client_id,
                "client_secret": secret or self.server.client_secret,
            },
        ) as resp:
            assert resp.status == 200, await resp.text()
            self.token = (await resp.json())["access_token"]
        return self.token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(extra or {})
        return h

    async def get(self, url: str, params: Any = None) -> tuple[int, Any]:
        async with self.session.get(url, params=params, headers=self.headers()) as resp:
            text = await resp.text()
            return resp.status, loads(text) if text else None

    async def ok(self, url: str, params: Any = None) -> Any:
        """GET that must answer 200; the parsed body."""
        status, body = await self.get(url, params)
        assert status == 200, body
        return body

    async def post(
        self, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["data"] = dumps(body)
            kwargs["headers"] = self.headers(
                {"Content-Type": "application/json", **(headers or {})}
            )
        else:
            kwargs["headers"] = self.headers(headers)
        async with self.session.post(url, **kwargs) as resp:
            text = await resp.text()
            return resp.status, loads(text) if text else None

    async def submit(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """POST a write, wait for BATCH_COMPLETED (subscribed first), return the batch."""
        status, answer = await self.post(f"{self.org}/{path}", body, headers)
        assert status == 202, answer
        batch_id = answer["data"]["batchId"]
        await self.wait_batch(batch_id)
        status, batch = await self.get(f"{self.org}/batches/{batch_id}")
        assert status == 200
        return batch["data"]  # type: ignore[no-any-return]

    async def wait_batch(self, batch_id: str) -> None:
        fut = self.server.events.wait_for(BATCH_COMPLETED, lambda e: e.data["batchId"] == batch_id)
        try:
            batch = await self.ok(f"{self.org}/batches/{batch_id}")
            if batch["data"]["status"] != "QUEUED":
                return
            async with asyncio.timeout(TIMEOUT):
                await fut
        finally:
            fut.cancel()

    async def all_pages(
        self, url: str, params: dict[str, str], token_name: str = "PageToken"
    ) -> tuple[list[dict[str, Any]], int]:
        items: list[dict[str, Any]] = []
        query = dict(params)
        for pages in range(1, 10_000):
            page = await self.ok(url, query)
            items.extend(page["data"])
            token = page["summary"]["nextPageToken"]
            if not token:
                return items, pages
            query = {**params, token_name: token}
        raise AssertionError("listing did not end")


def new_invoice(n: int = 1, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "NOTICE",
        "invoiceNumber": f"INV-T-{n:05d}",
        "vat": True,
        "fees": False,
        "originalInvoiceAmount": Decimal("4500.10"),
        "currency": "NOK",
        "invoiceDate": "2024-01-15T00:00:00Z",
        "dueDate": "2024-02-15T00:00:00Z",
        "uniqueSourceInvoiceId": f"test-usid-{n:05d}",
        "description": "Husleie februar",
        "debtors": [
            {
                "type": "PRIVATE",
                "firstname": "Kari",
                "lastname": "Nordmann",
                "customerNumber": "C-77",
                "emails": [{"value": "kari@epost.example"}],
            }
        ],
    }
    body.update(over)
    return body
