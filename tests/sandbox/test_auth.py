from __future__ import annotations

import base64
import json
import uuid

import aiohttp
import pytest

from amili_async.sandbox import (
    RESTRICTED_CLIENT_ID,
    RESTRICTED_CLIENT_SECRET,
    SandboxConfig,
    SandboxServer,
)

from ._support import Api


def _payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


async def _token(session: aiohttp.ClientSession, server: SandboxServer, **form: str):
    data = {
        "grant_type": "client_credentials",
        "client_id": server.client_id,
        "client_secret": server.client_secret,
    }
    data.update(form)
    return await session.post(server.token_url, data=data)


async def test_token_success(server: SandboxServer, session: aiohttp.ClientSession) -> None:
    async with await _token(session, server) as resp:
        assert resp.status == 200
        assert resp.headers["X-Amili-Request-Id"]
        body = await resp.json()
    assert list(body) == [
        "access_token",
        "token_type",
        "not_before",
        "expires_in",
        "expires_on",
        "resource",
    ]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["expires_on"] - body["not_before"] == 3600
    assert body["access_token"].count(".") == 2
    claims = _payload(body["access_token"])
    assert claims["sub"] == "sandbox"
    assert claims["orgs"] == ["*"]
    assert claims["exp"] == body["expires_on"]
    assert isinstance(claims["iat"], int)


async def test_token_lifetime_is_configurable(session: aiohttp.ClientSession) -> None:
    async with (
        SandboxServer(SandboxConfig(token_lifetime=60)) as server,
        await _token(session, server) as resp,
    ):
        body = await resp.json()
    assert body["expires_in"] == 60


@pytest.mark.parametrize(
    "form",
    [
        {"client_secret": "wrong"},
        {"client_id": "nobody"},
        {"grant_type": "password"},
        {"grant_type": ""},
    ],
)
async def test_token_failure(
    server: SandboxServer, session: aiohttp.ClientSession, form: dict[str, str]
) -> None:
    async with await _token(session, server, **form) as resp:
        assert resp.status == 401
        assert await resp.json() == {"error": "invalid_client"}


async def _status(api: Api, authorization: str | None) -> tuple[int, dict[str, object], str]:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with api.session.get(f"{api.org}/invoices", headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), resp.content_type


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic Zm9vOmJhcg==", "Bearer", "Bearer not-a-jwt", "Bearer a.b.c"],
)
async def test_missing_or_malformed_token_is_401(api: Api, authorization: str | None) -> None:
    status, body, ctype = await _status(api, authorization)
    assert status == 401
    assert ctype == "application/problem+json"
    assert body["status"] == 401
    assert body["traceId"]


async def test_bad_signature_is_401(api: Api) -> None:
    head, payload, sig = api.token.split(".")
    forged = _payload(api.token)
    forged["orgs"] = ["*"]
    forged["sub"] = "someone-else"
    raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    status, body, _ = await _status(api, f"Bearer {head}.{raw}.{sig}")
    assert status == 401
    assert "signature" in str(body["detail"])
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    status, _, _ = await _status(api, f"Bearer {head}.{payload}.{flipped}")
    assert status == 401


async def test_expired_token_is_401(api: Api) -> None:
    expired = api.server.issue_token(lifetime=-30)
    status, body, _ = await _status(api, f"Bearer {expired}")
    assert status == 401
    assert "expired" in str(body["detail"])


async def test_token_of_another_sandbox_is_401(api: Api, session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as other:
        foreign = other.issue_token()
    status, _, _ = await _status(api, f"Bearer {foreign}")
    assert status == 401


async def test_valid_token_without_org_access_is_403(api: Api) -> None:
    await api.login(RESTRICTED_CLIENT_ID, RESTRICTED_CLIENT_SECRET)
    status, body = await api.get(f"{api.org}/invoices")
    assert status == 403
    assert body["status"] == 403
    status, _ = await api.post(f"{api.org}/invoices", {"invoices": []})
    assert status == 403


async def test_unknown_org_is_404(api: Api) -> None:
    status, body = await api.get(f"{api.org_url(str(uuid.uuid4()))}/invoices")
    assert status == 404
    assert body["title"] == "Not Found"
    status, _ = await api.get(f"{api.org_url('not-a-uuid')}/batches")
    assert status == 404


async def test_every_response_has_a_request_id(api: Api) -> None:
    seen = set()
    for url in (
        f"{api.org}/invoices",
        f"{api.org}/invoices/{uuid.uuid4()}",
        api.server.origin + "/x",
    ):
        async with api.session.get(url, headers=api.headers()) as resp:
            rid = resp.headers["X-Amili-Request-Id"]
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                assert body["traceId"] == rid
            seen.add(rid)
    assert len(seen) == 3


async def test_unknown_route_and_method_are_problem_details(api: Api) -> None:
    async with api.session.get(api.server.origin + "/nope") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
    async with api.session.delete(f"{api.org}/invoices", headers=api.headers()) as resp:
        assert resp.status == 405
        assert resp.content_type == "application/problem+json"
        assert "GET" in resp.headers["Allow"]
