"""_client.py: construction (hosts, auth, environment variables), raw responses, lifecycle,
hooks."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aioresponses import CallbackResult
from yarl import URL

from amili_async import (
    AmiliClient,
    AmiliError,
    NotFoundError,
    RawResponse,
    RawResponseUnavailableError,
    Response,
    models,
)
from amili_async._transport import RequestInfo
from amili_async.resources import Invoices, Payments

BASE = "https://api.test.invalid/collection/v1"
ORG = "org-1"
INVOICE = {"summary": {"status": "SUCCESS"}, "data": {"id": "inv-1", "status": "OPEN"}}
TOKEN_REPLY = {"access_token": "fetched-access-token", "token_type": "Bearer", "expires_in": 3600}
SECRET = "s3cret-client-secret"
ENV_VARS = ("AMILI_BASE_URL", "AMILI_ENVIRONMENT", "AMILI_CLIENT_ID", "AMILI_CLIENT_SECRET")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def anywhere(origin: str) -> re.Pattern[str]:
    return re.compile(re.escape(origin) + r"/.*")


def sent(m: Any) -> list[tuple[str, str, Any]]:
    """(method, URL, call) of every request, in order of first appearance."""
    return [
        (method, str(url), call) for (method, url), calls in m.requests.items() for call in calls
    ]


# --- hosts -------------------------------------------------------------------------------------


async def test_without_hosts_the_client_asks_for_an_environment() -> None:
    with pytest.raises(ValueError, match="environment"):
        AmiliClient(token="t")


@pytest.mark.parametrize(
    ("environment", "api", "token_url"),
    [
        (
            "staging",
            "https://api.staging.amili.no/collection/v1",
            "https://auth.staging.amili.no/token",
        ),
        ("production", "https://api.amili.no/collection/v1", "https://auth.amili.no/token"),
    ],
)
async def test_named_environments_pick_api_and_token_hosts(
    mocked: Any, environment: str, api: str, token_url: str
) -> None:
    mocked.post(token_url, payload=TOKEN_REPLY)
    mocked.get(f"{api}/orgs/{ORG}/invoices/inv-1", payload=INVOICE)
    async with AmiliClient(client_id="cid", client_secret=SECRET, environment=environment) as c:  # type: ignore[arg-type]
        assert c.base_url == api
        invoice = await c.invoices.get(ORG, "inv-1")
    assert invoice.id == "inv-1"
    (token_call,) = mocked.requests[("POST", URL(token_url))]
    assert parse_qs(token_call.kwargs["data"].decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["cid"],
        "client_secret": [SECRET],
    }
    (api_call,) = mocked.requests[("GET", URL(f"{api}/orgs/{ORG}/invoices/inv-1"))]
    assert api_call.kwargs["headers"]["Authorization"] == "Bearer fetched-access-token"


async def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown environment"):
        AmiliClient(token="t", environment="qa")  # type: ignore[arg-type]


async def test_base_url_overrides_the_environment_and_legacy_uses_its_origin(mocked: Any) -> None:
    mocked.get(anywhere("https://proxy.test.invalid:8443"), payload=INVOICE)
    mocked.get(anywhere("https://proxy.test.invalid:8443"), payload={"message": "pong"})
    async with AmiliClient(
        token="t", environment="staging", base_url="https://proxy.test.invalid:8443/amili/v1/"
    ) as c:
        assert c.base_url == "https://proxy.test.invalid:8443/amili/v1"
        await c.invoices.get(ORG, "inv-1")
        await c.legacy.ping()
    assert [url for _, url, _ in sent(mocked)] == [
        f"https://proxy.test.invalid:8443/amili/v1/orgs/{ORG}/invoices/inv-1",
        "https://proxy.test.invalid:8443/webapi/api/Ping",
    ]


@pytest.mark.parametrize(
    ("token_url", "expected"),
    [
        (None, "https://gw.test.invalid/token"),  # the origin of base_url, not Amili's host
        ("https://idp.test.invalid/oauth/token", "https://idp.test.invalid/oauth/token"),
    ],
)
async def test_token_url_defaults_to_the_base_url_origin(
    mocked: Any, token_url: str | None, expected: str
) -> None:
    mocked.post(expected, payload=TOKEN_REPLY)
    mocked.get(anywhere("https://gw.test.invalid"), payload=INVOICE)
    async with AmiliClient(
        client_id="cid",
        client_secret=SECRET,
        base_url="https://gw.test.invalid/collection/v1",
        token_url=token_url,
    ) as c:
        await c.invoices.get(ORG, "inv-1")
    assert [(method, url) for method, url, _ in sent(mocked)] == [
        ("POST", expected),
        ("GET", f"https://gw.test.invalid/collection/v1/orgs/{ORG}/invoices/inv-1"),
    ]


@pytest.mark.parametrize(
    "base_url", ["ftp://x.test/collection/v1", "/collection/v1", "https://x/?a=1"]
)
async def test_malformed_base_urls_are_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        AmiliClient(token="t", base_url=base_url)


# --- authentication choice ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        {"token": "t", "token_provider": lambda: "t"},
        {"client_id": "cid", "client_secret": SECRET, "token": "t"},
        {"client_id": "cid", "token_provider": lambda: "t"},
        {"client_secret": SECRET, "token": "t"},
    ],
    ids=["token+provider", "credentials+token", "id+provider", "secret+token"],
)
async def test_two_ways_to_authenticate_are_refused(credentials: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="only one way to authenticate"):
        AmiliClient(base_url=BASE, **credentials)


@pytest.mark.parametrize(
    "credentials",
    [{}, {"client_id": "cid"}, {"client_secret": SECRET}],
    ids=["none", "id", "secret"],
)
async def test_missing_credentials_are_refused(credentials: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="credentials missing"):
        AmiliClient(base_url=BASE, **credentials)


async def test_token_provider_supplies_the_bearer_token(mocked: Any) -> None:
    mocked.get(anywhere(BASE), payload=INVOICE)

    async def provide() -> str:
        return "provided-token"

    async with AmiliClient(token_provider=provide, base_url=BASE) as c:
        await c.invoices.get(ORG, "inv-1")
    ((_, _, call),) = sent(mocked)
    assert call.kwargs["headers"]["Authorization"] == "Bearer provided-token"


# --- environment variables ---------------------------------------------------------------------


async def test_environment_variables_supply_credentials_and_base_url(
    mocked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMILI_CLIENT_ID", "env-client")
    monkeypatch.setenv("AMILI_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("AMILI_BASE_URL", "https://env.test.invalid/collection/v1")
    mocked.post("https://env.test.invalid/token", payload=TOKEN_REPLY)
    mocked.get(anywhere("https://env.test.invalid"), payload=INVOICE)
    async with AmiliClient() as c:
        assert c.base_url == "https://env.test.invalid/collection/v1"
        await c.invoices.get(ORG, "inv-1")
    (token_call,) = mocked.requests[("POST", URL("https://env.test.invalid/token"))]
    form = parse_qs(token_call.kwargs["data"].decode())
    assert (form["client_id"], form["client_secret"]) == (["env-client"], [SECRET])


async def test_environment_variable_picks_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMILI_ENVIRONMENT", "staging")
    async with AmiliClient(token="t") as c:
        assert c.base_url == "https://api.staging.amili.no/collection/v1"


async def test_explicit_arguments_win_over_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AMILI_ENVIRONMENT", "staging")
    monkeypatch.setenv("AMILI_BASE_URL", "https://env.test.invalid/collection/v1")
    monkeypatch.setenv("AMILI_CLIENT_ID", "env-client")
    monkeypatch.setenv("AMILI_CLIENT_SECRET", SECRET)
    async with AmiliClient(token="t", environment="production") as c:
        assert c.base_url == "https://api.amili.no/collection/v1"
        assert "env-client" not in repr(c)  # the static token was used, not the env credentials


async def test_an_invalid_environment_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMILI_ENVIRONMENT", "prod")
    with pytest.raises(ValueError, match="AMILI_ENVIRONMENT"):
        AmiliClient(token="t")


# --- no credentials in repr --------------------------------------------------------------------


async def test_repr_shows_neither_secret_nor_token(mocked: Any) -> None:
    mocked.post("https://api.test.invalid/token", payload=TOKEN_REPLY)
    mocked.get(anywhere(BASE), payload=INVOICE)
    async with AmiliClient(client_id="cid", client_secret=SECRET, base_url=BASE) as c:
        await c.invoices.get(ORG, "inv-1")  # a token is now cached inside
        text = repr(c) + str(c)
    assert BASE in text
    assert SECRET not in text
    assert "fetched-access-token" not in text
    async with AmiliClient(token="static-token-value", base_url=BASE) as c:
        assert "static-token-value" not in repr(c) + str(c)


# --- raw responses -----------------------------------------------------------------------------


async def test_with_raw_response_gives_data_status_headers_and_request_id(
    mocked: Any, client: AmiliClient
) -> None:
    mocked.get(
        anywhere(BASE),
        payload=INVOICE,
        headers={"X-Amili-Request-Id": "req-42", "X-RateLimit-Remaining": "7"},
    )
    raw = await client.with_raw_response(client.invoices.get(ORG, "inv-1"))
    assert isinstance(raw, RawResponse)
    assert isinstance(raw.data, models.Invoice)
    assert raw.data.id == "inv-1"
    assert raw.status_code == 200
    assert raw.request_id == "req-42"
    assert raw.headers["x-ratelimit-remaining"] == "7"  # case-insensitive
    assert isinstance(raw.response, Response)
    assert raw.response.url == f"{BASE}/orgs/{ORG}/invoices/inv-1"


async def test_with_raw_response_of_an_action_without_body(
    mocked: Any, client: AmiliClient
) -> None:
    mocked.post(anywhere(BASE), status=202, body=b"", headers={"X-Amili-Request-Id": "req-a"})
    raw = await client.with_raw_response(client.collections.pause_case(ORG, "c-1"))
    assert (raw.data, raw.status_code, raw.request_id) == (None, 202, "req-a")


async def test_concurrent_raw_responses_each_see_their_own(
    mocked: Any, client: AmiliClient
) -> None:
    arrived = {"inv-a": asyncio.Event(), "inv-b": asyncio.Event()}
    release_a = asyncio.Event()

    async def serve(url: URL, **kwargs: Any) -> CallbackResult:
        invoice_id = url.name
        arrived[invoice_id].set()
        if invoice_id == "inv-a":
            await release_a.wait()  # "a" is answered only after "b" completed
        return CallbackResult(
            payload={"data": {"id": invoice_id}},
            headers={"X-Amili-Request-Id": f"req-{invoice_id}"},
        )

    mocked.get(anywhere(BASE), callback=serve, repeat=True)
    task_a = asyncio.create_task(client.with_raw_response(client.invoices.get(ORG, "inv-a")))
    await asyncio.wait_for(arrived["inv-a"].wait(), 2)
    task_b = asyncio.create_task(client.with_raw_response(client.invoices.get(ORG, "inv-b")))
    raw_b = await asyncio.wait_for(task_b, 2)
    release_a.set()
    raw_a = await asyncio.wait_for(task_a, 2)
    assert (raw_a.data.id, raw_a.request_id) == ("inv-a", "req-inv-a")
    assert (raw_b.data.id, raw_b.request_id) == ("inv-b", "req-inv-b")


async def test_gathered_raw_responses_each_see_their_own(mocked: Any, client: AmiliClient) -> None:
    def serve(url: URL, **kwargs: Any) -> CallbackResult:
        return CallbackResult(
            payload={"data": {"id": url.name}}, headers={"X-Amili-Request-Id": f"req-{url.name}"}
        )

    mocked.get(anywhere(BASE), callback=serve, repeat=True)
    ids = [f"inv-{n}" for n in range(5)]
    raws = await asyncio.gather(
        *(client.with_raw_response(client.invoices.get(ORG, i)) for i in ids)
    )
    assert [(raw.data.id, raw.request_id) for raw in raws] == [(i, f"req-{i}") for i in ids]


async def test_raw_response_capture_does_not_leak_to_later_calls(
    mocked: Any, client: AmiliClient
) -> None:
    mocked.get(anywhere(BASE), payload=INVOICE, repeat=True)
    await client.with_raw_response(client.invoices.get(ORG, "inv-1"))

    async def no_request() -> int:
        return 1

    with pytest.raises(ValueError, match="sent no request"):
        await client.with_raw_response(no_request())


async def test_with_raw_response_of_several_requests_gives_the_last_and_counts_them(
    mocked: Any, client: AmiliClient
) -> None:
    def batch(status: str, request_id: str) -> dict[str, Any]:
        return {"payload": {"data": {"batchId": "b", "status": status}},
                "headers": {"X-Amili-Request-Id": request_id}}  # fmt: skip

    url = f"{BASE}/orgs/{ORG}/batches/b"
    mocked.get(url, **batch("QUEUED", "req-1"))
    mocked.get(url, **batch("SUCCESS", "req-2"))
    raw = await client.with_raw_response(client.batches.wait(ORG, "b", poll_interval=0))
    assert raw.data.status == models.BatchStatus.SUCCESS
    assert (raw.requests, raw.request_id) == (2, "req-2")


@pytest.mark.parametrize("call", ["listing", "create_many"])
async def test_with_raw_response_refuses_what_streams_many_responses(
    mocked: Any, client: AmiliClient, call: str
) -> None:
    streaming: Any = (
        client.invoices.list(ORG)
        if call == "listing"
        else client.invoices.create_many(ORG, [{"invoiceNumber": "1"}])
    )
    with pytest.raises(RawResponseUnavailableError, match="on_response=") as caught:
        await client.with_raw_response(streaming)
    assert isinstance(caught.value, AmiliError)
    assert isinstance(caught.value, TypeError)
    assert mocked.requests == {}  # refused before anything was sent


async def test_with_raw_response_passes_errors_through(mocked: Any, client: AmiliClient) -> None:
    mocked.get(anywhere(BASE), status=404, payload={"title": "Not Found"})
    with pytest.raises(NotFoundError):
        await client.with_raw_response(client.invoices.get(ORG, "missing"))


# --- lifecycle ---------------------------------------------------------------------------------


async def test_async_with_closes_and_a_closed_client_refuses_calls(mocked: Any) -> None:
    mocked.get(anywhere(BASE), payload=INVOICE, repeat=True)
    async with AmiliClient(token="t", base_url=BASE) as c:
        assert not c.closed
        await c.invoices.get(ORG, "inv-1")
    assert c.closed
    with pytest.raises(AmiliError, match="closed"):
        await c.invoices.get(ORG, "inv-1")
    with pytest.raises(AmiliError, match="closed"):
        await c.invoices.list(ORG).collect()
    await c.aclose()  # idempotent
    assert len(sent(mocked)) == 1


async def test_aclose_before_any_request(mocked: Any) -> None:
    c = AmiliClient(token="t", base_url=BASE)
    await c.aclose()
    with pytest.raises(AmiliError, match="closed"):
        await c.legacy.ping()
    assert sent(mocked) == []


async def test_a_session_passed_in_is_used_and_left_open(mocked: Any) -> None:
    mocked.get(anywhere(BASE), payload=INVOICE)
    async with aiohttp.ClientSession(headers={"X-Caller-Session": "yes"}) as session:
        async with AmiliClient(token="t", base_url=BASE, session=session) as c:
            await c.invoices.get(ORG, "inv-1")
        assert c.closed
        assert not session.closed
        ((_, _, call),) = sent(mocked)
        assert call.kwargs["headers"]["X-Caller-Session"] == "yes"


async def test_an_exception_inside_async_with_still_closes(mocked: Any) -> None:
    with pytest.raises(RuntimeError, match="caller"):
        async with AmiliClient(token="t", base_url=BASE) as c:
            raise RuntimeError("caller failed")
    assert c.closed


# --- hooks -------------------------------------------------------------------------------------


async def test_request_and_response_hooks_see_every_resource_call(mocked: Any) -> None:
    mocked.get(anywhere(BASE), payload=INVOICE, headers={"X-Amili-Request-Id": "req-1"})
    mocked.post(anywhere(BASE), status=202, body=b"", headers={"X-Amili-Request-Id": "req-2"})
    requests: list[RequestInfo] = []
    responses: list[Response] = []

    async def on_response(response: Response) -> None:
        await asyncio.sleep(0)
        responses.append(response)

    async with AmiliClient(
        token="secret-bearer",
        base_url=BASE,
        on_request=requests.append,
        on_response=on_response,
    ) as c:
        await c.invoices.get(ORG, "inv-1")
        await c.collections.pause_case(ORG, "c-1", reason="r")

    assert [(r.method, r.url, r.attempt) for r in requests] == [
        ("GET", f"{BASE}/orgs/{ORG}/invoices/inv-1", 1),
        ("POST", f"{BASE}/orgs/{ORG}/cases/c-1/pause", 1),
    ]
    assert all("secret-bearer" not in str(r.headers) for r in requests)
    assert "IdempotencyKey" in requests[1].headers
    assert [(r.status_code, r.request_id) for r in responses] == [(200, "req-1"), (202, "req-2")]


async def test_a_failing_hook_fails_the_call(mocked: Any) -> None:
    mocked.get(anywhere(BASE), payload=INVOICE)

    def on_request(info: RequestInfo) -> None:
        raise RuntimeError("hook refused")

    async with AmiliClient(token="t", base_url=BASE, on_request=on_request) as c:
        with pytest.raises(RuntimeError, match="hook refused"):
            await c.invoices.get(ORG, "inv-1")
    assert sent(mocked) == []


async def test_hooks_see_listing_pages_fetched_ahead(mocked: Any) -> None:
    mocked.get(anywhere(BASE), payload={"data": [{"id": "a"}], "summary": {"nextPageToken": "p2"}})
    mocked.get(anywhere(BASE), payload={"data": [{"id": "b"}]})
    urls: list[str] = []
    async with AmiliClient(
        token="t", base_url=BASE, prefetch=2, on_request=lambda info: urls.append(info.url)
    ) as c:
        assert [i.id async for i in c.invoices.list(ORG, status="OPEN")] == ["a", "b"]
    # Hooks get the URL without the query string (filters can be personal data).
    assert urls == [f"{BASE}/orgs/{ORG}/invoices"] * 2


# --- per-call options ----------------------------------------------------------------------------


async def test_with_options_layers_over_the_client_and_shares_its_pool(mocked: Any) -> None:
    url = f"{BASE}/orgs/{ORG}/invoices/inv-1"
    mocked.get(url, status=503, repeat=True)
    async with AmiliClient(token="t", base_url=BASE, max_retries=0) as client:
        patient = client.with_options(max_retries=2, extra_headers={"X-Trace": "t1"})
        patient = patient.with_options(timeout=7)
        with pytest.raises(AmiliError):
            await patient.invoices.get(ORG, "inv-1")
        calls = mocked.requests[("GET", URL(url))]
        assert len(calls) == 3  # two retries, from the derived options
        assert all(call.kwargs["headers"]["X-Trace"] == "t1" for call in calls)
        assert all(call.kwargs["timeout"].total == 7 for call in calls)
        with pytest.raises(AmiliError):
            await client.invoices.get(ORG, "inv-1")
        assert len(mocked.requests[("GET", URL(url))]) == 4  # the original kept max_retries=0
        assert "X-Trace" not in mocked.requests[("GET", URL(url))][-1].kwargs["headers"]
    assert patient.closed  # one pool: closing the client closed it for both


async def test_with_options_shares_one_state_and_exposes_the_same_settings() -> None:
    async with AmiliClient(
        token="t", base_url=BASE, rate_limit=5.0, retry_budget=True, prefetch=3
    ) as client:
        derived = client.with_options(prefetch=1).with_options(timeout=2)
        # One construction path: the derived client holds the very state, nothing copied.
        assert derived._state is client._state
        assert (derived.base_url, derived.rate_limiter, derived.retry_budget) == (
            client.base_url,
            client.rate_limiter,
            client.retry_budget,
        )
        assert derived.rate_limiter is not None
        assert derived.retry_budget is not None
        assert (client.prefetch, derived.prefetch) == (3, 1)
        assert isinstance(derived.invoices, Invoices)  # the plain resources, create_many on it
        assert type(client.payments) is Payments
        assert derived.invoices._sender is not client.invoices._sender  # its own defaults
        assert repr(derived) == repr(client)


async def test_a_method_timeout_wins_over_with_options(mocked: Any, client: AmiliClient) -> None:
    url = f"{BASE}/orgs/{ORG}/invoices/inv-1"
    mocked.get(url, payload=INVOICE)
    await client.with_options(timeout=7).invoices.get(ORG, "inv-1", timeout=2)
    assert mocked.requests[("GET", URL(url))][0].kwargs["timeout"].total == 2


async def test_with_options_refuses_a_negative_retry_count(client: AmiliClient) -> None:
    with pytest.raises(ValueError, match="max_retries"):
        client.with_options(max_retries=-1)
