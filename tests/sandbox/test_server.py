from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from amili_async.sandbox import (
    DEFAULT_ORG_ID,
    EventBus,
    SandboxConfig,
    SandboxServer,
    create_app,
    serve_forever,
)


async def test_server_addresses_and_lifecycle(session: aiohttp.ClientSession) -> None:
    server = SandboxServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    await server.start()
    try:
        assert server.origin == f"http://127.0.0.1:{server.port}"
        assert server.base_url == server.origin + "/collection/v1"
        assert server.token_url == server.origin + "/token"
        assert (server.client_id, server.client_secret) == ("sandbox", "sandbox-secret")
        assert server.default_org_id == DEFAULT_ORG_ID
        assert server.state.default_org.invoice_count == 50
        ping = server.origin + "/webapi/api/Ping"
        auth = {"Authorization": f"Bearer {server.issue_token()}"}
        async with session.get(ping, headers=auth) as resp:
            assert resp.status == 200
        with pytest.raises(RuntimeError):
            await server.start()
    finally:
        await server.close()
    await server.close()  # idempotent


async def test_serve_forever_until_cancelled(session: aiohttp.ClientSession) -> None:
    ready: asyncio.Future[SandboxServer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_forever(SandboxConfig(invoices=5), ready=ready.set_result))
    server = await asyncio.wait_for(ready, 5)
    auth = {"Authorization": f"Bearer {server.issue_token()}"}
    async with session.get(server.origin + "/webapi/api/Ping", headers=auth) as resp:
        assert await resp.json() == {"message": "pong"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_create_app_without_a_loop() -> None:
    app = create_app(SandboxConfig(invoices=3))
    assert app.router.resources()


async def test_event_bus(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(_: object) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    off = bus.subscribe(lambda e: seen.append(e.type), "A")
    waiter = bus.wait_for("B", lambda e: e.data["n"] == 2)
    with caplog.at_level(logging.ERROR):
        bus.publish("A", {"n": 1})
        bus.publish("B", {"n": 1})
        assert not waiter.done()
        event = bus.publish("B", {"n": 2})
    assert await waiter is event
    assert seen == ["A"]
    assert "subscriber bug" in caplog.text
    off()
    bus.publish("A", {})
    assert seen == ["A"]
    cancelled = bus.wait_for("C")
    cancelled.cancel()
    await asyncio.sleep(0)  # let the done-callback unsubscribe
    bus.publish("C", {})
    assert len(bus.history) == 5
    assert event.to_dict()["timeStamp"].endswith("Z")
