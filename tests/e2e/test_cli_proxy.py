"""The standard proxy variables are honoured (issue 25, item 12), through the real CLI.

A tiny forwarding proxy on loopback records every request it is asked to carry (an HTTP proxy
gets the absolute URL in the request line) and passes it on to the sandbox. With HTTP_PROXY
set, every call of `amili-async export` (the token request included) goes through it; with the
sandbox's host in NO_PROXY, none does. Loopback is not exempt by itself (aiohttp follows
urllib's rules on Linux): that is what the README says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import attrs
import pytest
from aiohttp import web
from yarl import URL

from amili_async.sandbox import SandboxConfig, SandboxServer

from .conftest import run_cli
from .test_cli import CHILD_TIMEOUT, base_env, jsonl_ids

SEEDED = 30

# Hop-by-hop headers and the ones the proxy recomputes: never passed on.
_NOT_FORWARDED = {
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "accept-encoding",
}


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=SEEDED, seed=2, batch_delay=0.01)


@attrs.define
class Proxy:
    url: str
    carried: list[str] = attrs.Factory(list)
    """`METHOD absolute-URL` of every request the proxy carried."""


@asynccontextmanager
async def forwarding_proxy() -> AsyncIterator[Proxy]:
    """An HTTP proxy on a free loopback port that records and forwards plain-HTTP requests."""
    async with aiohttp.ClientSession(auto_decompress=True) as upstream:  # trust_env off
        proxy = Proxy(url="")

        async def carry(request: web.Request) -> web.Response:
            target = URL(request.raw_path)
            if not target.is_absolute():  # asked as an origin server, not as a proxy
                return web.Response(status=400, text="not a proxy request")
            proxy.carried.append(f"{request.method} {target.path}")
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
            async with upstream.request(
                request.method, target, headers=headers, data=await request.read()
            ) as answer:
                body = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
                return web.Response(status=answer.status, body=body, headers=kept)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", carry)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            proxy.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            yield proxy
        finally:
            await runner.cleanup()


def _env(server: SandboxServer, **values: str) -> dict[str, str]:
    env = base_env(
        AMILI_BASE_URL=server.base_url,
        AMILI_CLIENT_ID=server.client_id,
        AMILI_CLIENT_SECRET=server.client_secret,
        **values,
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        if name not in values:  # only what the test sets, whatever the machine has
            env.pop(name, None)
            env.pop(name.lower(), None)
    return env


async def test_http_proxy_carries_every_call(amili_sandbox: SandboxServer, tmp_path: Path) -> None:
    org = amili_sandbox.default_org_id
    out = tmp_path / "via-proxy.jsonl"
    async with forwarding_proxy() as proxy:
        run = await run_cli(
            "export", "invoices", "--org", org, "--out", out, "--page-size", "10",
            env=_env(amili_sandbox, HTTP_PROXY=proxy.url), timeout=CHILD_TIMEOUT,
        )  # fmt: skip

    assert run.code == 0, run.stderr
    assert len(jsonl_ids(out)) == SEEDED
    assert proxy.carried[0] == "POST /token"
    assert proxy.carried[1:] == [f"GET /collection/v1/orgs/{org}/invoices"] * (SEEDED // 10)


async def test_no_proxy_bypasses_it(amili_sandbox: SandboxServer, tmp_path: Path) -> None:
    org = amili_sandbox.default_org_id
    out = tmp_path / "direct.jsonl"
    async with forwarding_proxy() as proxy:
        run = await run_cli(
            "export", "invoices", "--org", org, "--out", out,
            env=_env(amili_sandbox, HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1,localhost"),
            timeout=CHILD_TIMEOUT,
        )  # fmt: skip

    assert run.code == 0, run.stderr
    assert len(jsonl_ids(out)) == SEEDED
    assert proxy.carried == []
