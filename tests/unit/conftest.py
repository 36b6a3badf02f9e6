"""Shared fixtures of the unit tests: recorded sleeps, self-closing transports, a mocked client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aioresponses import aioresponses

from amili_async import AmiliClient
from amili_async._auth import StaticTokenAuth
from amili_async._request import Request
from amili_async._response import Response, raise_for_status
from amili_async._retry import RetryPolicy
from amili_async._transport import Transport

BASE_URL = "https://api.test.invalid/collection/v1"
TOKEN_URL = "https://auth.test.invalid/token"


class SleepRecorder:
    """Stands in for asyncio.sleep: records the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleeper() -> SleepRecorder:
    return SleepRecorder()


class CheckedTransport(Transport):
    """The transport as resources see it: its last answer through the pipeline's status check."""

    async def send(self, request: Request) -> Response:
        return raise_for_status(await super().send(request))


@pytest.fixture
async def make_transport(sleeper: SleepRecorder) -> AsyncIterator[Callable[..., Transport]]:
    """Builds transports with test defaults (rng fixed at 0.5) and closes them all afterwards."""
    created: list[Transport] = []

    def make(**overrides: Any) -> Transport:
        settings: dict[str, Any] = {
            "base_url": BASE_URL,
            "auth": StaticTokenAuth("static-token-value"),
            "timeout": 5.0,
            "retry": RetryPolicy(),
            "max_connections": 10,
            "user_agent": "amili-async-tests/0",
            "sleep": sleeper,
            "rng": lambda: 0.5,
        }
        settings.update(overrides)
        transport = CheckedTransport(**settings)
        created.append(transport)
        return transport

    yield make
    for transport in created:
        await transport.aclose()


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    """aioresponses for tests that go through a whole AmiliClient."""
    with aioresponses() as m:
        yield m


@pytest.fixture
async def client() -> AsyncIterator[AmiliClient]:
    """A client with a static token against BASE_URL and no retries: one request per call."""
    async with AmiliClient(token="t", base_url=BASE_URL, max_retries=0) as c:
        yield c
