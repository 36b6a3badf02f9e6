from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from amili_async.sandbox import SandboxConfig, SandboxServer

from ._support import Api


@pytest.fixture
def config() -> SandboxConfig:
    return SandboxConfig(invoices=50, batch_delay=0.01)


@pytest.fixture
async def server(config: SandboxConfig) -> AsyncIterator[SandboxServer]:
    async with SandboxServer(config) as srv:
        yield srv


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def api(server: SandboxServer, session: aiohttp.ClientSession) -> Api:
    client = Api(server, session)
    await client.login()
    return client
