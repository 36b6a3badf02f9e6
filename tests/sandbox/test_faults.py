from __future__ import annotations

import asyncio
import types

import aiohttp
import pytest

from amili_async.sandbox import FaultConfig, SandboxConfig, SandboxServer, _faults
from amili_async.sandbox._faults import FAULTS_KEY

from ._support import Api, new_invoice

CLOSE_GUARD = 60.0
"""Seconds a server close may take before the test fails: far above a close on any machine,
far below the injected latency it must not wait for."""
FULL = (
    "429=0.05,500=0.02,502=0.01,503=0.01,latency=20ms,jitter=5ms,drop_before=0.01,"
    "drop_after=0.01,truncate=0.01,html=0.01,seed=42"
)


def test_parse_full_spec() -> None:
    f = FaultConfig.parse(FULL)
    assert (f.rate_429, f.rate_500, f.rate_502, f.rate_503) == (0.05, 0.02, 0.01, 0.01)
    assert (f.drop_before, f.drop_after, f.truncate, f.html) == (0.01, 0.01, 0.01, 0.01)
    assert f.latency == pytest.approx(0.02)
    assert f.jitter == pytest.approx(0.005)
    assert f.seed == 42
    assert f.total_rate == pytest.approx(0.13)
    assert not f.include_token
    g = FaultConfig.parse(" 500=5% , latency=0.5s, retry_after=3, token=1 ")
    assert (g.rate_500, g.latency, g.retry_after, g.include_token) == (0.05, 0.5, 3, True)
    assert FaultConfig.parse("") == FaultConfig()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("404=0.1", "unknown fault spec key '404'"),
        ("500", "not key=value"),
        ("500=", "not key=value"),
        ("500=lots", "not a probability"),
        ("500=1.5", "outside [0, 1]"),
        ("500=0.6,502=0.6", "more than 1"),
        ("latency=fast", "expected a duration"),
        ("seed=x", "not an integer"),
        ("500=0.1,500=0.2", "given twice"),
        ("token=maybe", "expected 0/1"),
    ],
)
def test_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"fault|unknown") as err:
        FaultConfig.parse(spec)
    assert message in str(err.value)


async def _server(spec: str) -> SandboxServer:
    return await SandboxServer(SandboxConfig(faults=FaultConfig.parse(spec))).start()


@pytest.mark.parametrize("code", [429, 500, 502, 503])
async def test_error_status_faults(session: aiohttp.ClientSession, code: int) -> None:
    server = await _server(f"{code}=1,retry_after=2")
    try:
        api = Api(server, session)
        await api.login()  # /token is exempt
        async with session.get(f"{api.org}/invoices", headers=api.headers()) as resp:
            assert resp.status == code
            assert resp.content_type == "application/problem+json"
            body = await resp.json()
            assert body["status"] == code
            assert resp.headers["X-Amili-Request-Id"] == body["traceId"]
            if code in (429, 503):
                assert resp.headers["Retry-After"] == "2"
    finally:
        await server.close()


async def test_html_fault(session: aiohttp.ClientSession) -> None:
    server = await _server("html=1")
    try:
        api = Api(server, session)
        await api.login()
        async with session.get(f"{api.org}/invoices", headers=api.headers()) as resp:
            assert resp.status == 502
            assert resp.content_type == "text/html"
            assert "502 Bad Gateway" in await resp.text()
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("drop_before", aiohttp.ServerDisconnectedError),
        ("drop_after", aiohttp.ClientPayloadError),
        ("truncate", aiohttp.ClientPayloadError),
    ],
)
async def test_connection_faults(
    session: aiohttp.ClientSession, kind: str, error: type[Exception]
) -> None:
    server = await _server(f"{kind}=1")
    try:
        api = Api(server, session)
        await api.login()
        with pytest.raises(error):
            async with session.get(f"{api.org}/invoices", headers=api.headers()) as resp:
                await resp.read()
    finally:
        await server.close()


async def test_token_exempt_unless_configured(session: aiohttp.ClientSession) -> None:
    server = await _server("500=1,token=1")
    try:
        async with session.post(
            server.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": "sandbox",
                "client_secret": "sandbox-secret",
            },
        ) as resp:
            assert resp.status == 500
    finally:
        await server.close()


async def test_drop_after_a_post_really_processed_it(api: Api) -> None:
    api.server.set_faults("drop_after=1")
    key = {"IdempotencyKey": "retry-me"}
    with pytest.raises(aiohttp.ClientPayloadError):
        await api.post(f"{api.org}/invoices", {"invoices": [new_invoice(1)]}, key)
    api.server.set_faults(None)
    org = api.server.state.default_org
    assert len(org.batches) == 1
    status, answer = await api.post(f"{api.org}/invoices", {"invoices": [new_invoice(1)]}, key)
    assert status == 202
    assert answer["data"]["batchId"] == org.batches[0].id
    assert len(org.batches) == 1


async def test_drop_before_a_post_did_not_process_it(api: Api) -> None:
    api.server.set_faults(FaultConfig(drop_before=1.0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post(f"{api.org}/invoices", {"invoices": [new_invoice(1)]})
    assert api.server.state.default_org.batches == []


async def _statuses(session: aiohttp.ClientSession, spec: str, n: int) -> list[int]:
    server = await _server(spec)
    try:
        api = Api(server, session)
        await api.login()
        out = []
        for _ in range(n):
            async with session.get(
                f"{api.org}/invoices", params={"PageSize": "1"}, headers=api.headers()
            ) as resp:
                out.append(resp.status)
        return out
    finally:
        await server.close()


async def test_faults_are_deterministic_per_seed(session: aiohttp.ClientSession) -> None:
    spec = "429=0.2,500=0.1,503=0.1,html=0.1"
    a = await _statuses(session, spec + ",seed=7", 40)
    b = await _statuses(session, spec + ",seed=7", 40)
    c = await _statuses(session, spec + ",seed=8", 40)
    assert a == b
    assert a != c
    assert set(a) >= {200, 429}


async def test_latency(session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every API answer waits the drawn latency (40 ms +/- 5): the pause the middleware
    takes is recorded, not timed, so a loaded machine cannot change the outcome."""
    paused: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds: float) -> None:
        paused.append(seconds)
        await real_sleep(seconds)

    monkeypatch.setattr(_faults, "asyncio", types.SimpleNamespace(sleep=recording_sleep))
    server = await _server("latency=40ms,jitter=5ms")
    try:
        api = Api(server, session)
        await api.login()  # /token is exempt: no pause
        assert paused == []
        for _ in range(5):
            status, _ = await api.get(f"{api.org}/invoices", {"PageSize": "1"})
            assert status == 200
        assert len(paused) == 5  # one pause per API request, before its answer
        assert all(0.035 <= p <= 0.045 for p in paused), paused
        assert len(set(paused)) > 1  # jittered
    finally:
        await server.close()


async def test_server_close_during_injected_latency_is_clean(
    session: aiohttp.ClientSession,
) -> None:
    server = await _server("latency=3600s")
    api = Api(server, session)
    await api.login()
    injector = server.app[FAULTS_KEY][0]
    assert injector is not None
    drawn = asyncio.Event()
    draw = injector.draw

    def noting_draw() -> tuple[str | None, float]:
        drawn.set()  # the request is in the middleware, about to sit in the latency
        return draw()

    injector.draw = noting_draw  # type: ignore[method-assign]
    request = asyncio.ensure_future(api.get(f"{api.org}/invoices"))
    async with asyncio.timeout(CLOSE_GUARD):
        await drawn.wait()
    assert injector.draws == 1
    # The latency is an hour: a close that waited for it would hit the guard (far below).
    async with asyncio.timeout(CLOSE_GUARD):
        await server.close()
    with pytest.raises((aiohttp.ClientError, asyncio.CancelledError)):
        await request
