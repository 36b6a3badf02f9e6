"""Client-side rate control against the sandbox's per-client rate limit, over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from amili_async import AmiliError, FixedRate
from amili_async.sandbox import SandboxConfig, SandboxServer

from .conftest import connect, seeded_ids

LIMIT = 100.0  # requests per second the sandbox grants each client
CALLS = 250  # 2.5 s of traffic at the limit: a few adaptive cycles, a short test


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=CALLS, seed=4, rate_limit=LIMIT)


class Lockstep:
    """One time for the client's limiter and the sandbox's throttle that moves only when the
    limiter sleeps, and only once every request it let through has reached the throttle: the
    throttle then sees each request at the time the limiter sent it, however slowly a loaded
    machine carries it over loopback."""

    def __init__(self) -> None:
        self.now = 0.0
        self.released = 0  # requests the limiter let start
        self.arrived = 0  # requests the throttle saw (it reads its clock once per request)
        self._arrival = asyncio.Event()

    def client_clock(self) -> float:
        return self.now

    def server_clock(self) -> float:
        self.arrived += 1
        self._arrival.set()
        return self.now

    async def sleep(self, seconds: float) -> None:
        while self.arrived < self.released:
            self._arrival.clear()
            await self._arrival.wait()
        self.now += seconds


class Released:
    """A limiter that counts the attempts it lets start into the lockstep clock."""

    def __init__(self, inner: FixedRate, clock: Lockstep) -> None:
        self.inner = inner
        self.clock = clock

    async def before_attempt(self, max_wait: float | None = None) -> float:
        start = await self.inner.before_attempt(max_wait)
        self.clock.released += 1
        return start

    def after_response(self, status: int, headers: Mapping[str, str], sent_at: float) -> None:
        self.inner.after_response(status, headers, sent_at)


def frozen() -> float:
    """A throttle clock that never moves: the burst allowance is all a test gets, exactly."""
    return 0.0


async def burst(
    server: SandboxServer,
    server_clock: Callable[[], float] | None = None,
    **client_options: object,
) -> tuple[int, int]:
    """CALLS concurrent GetInvoiceById calls: (successes, 429 answers the sandbox gave)."""
    throttle = server.set_rate_limit(LIMIT, clock=server_clock)
    assert throttle is not None
    ids = seeded_ids(server)
    async with connect(server, max_retries=3, **client_options) as client:
        org = server.default_org_id

        async def one(invoice_id: str) -> bool:
            try:
                await client.invoices.get(org, invoice_id)
            except AmiliError:
                return False
            return True

        results = await asyncio.gather(*(one(i) for i in ids))
    return sum(results), throttle.refused


async def test_without_client_side_control_a_burst_is_mostly_refused(
    amili_sandbox: SandboxServer,
) -> None:
    # The throttle's clock stands still, so only its burst allowance (a tenth of a second at
    # LIMIT) gets through however fast or slow this machine sends.
    ok, refused = await burst(amili_sandbox, frozen)
    allowance = int(LIMIT * 0.1)
    assert ok == allowance  # every other call ran out of retries
    # Every first try past the allowance met a 429, and so did every retry (as many as the
    # client's retry budget lets through).
    assert refused > CALLS


async def test_adaptive_rate_control_gets_every_call_through_with_few_429s(
    amili_sandbox: SandboxServer,
) -> None:
    # Before its first 429 an adaptive client is unthrottled: what it can have in flight then
    # (max_connections) bounds the first wave of refusals; after that it keeps under the limit.
    ok, refused = await burst(amili_sandbox, rate_limit="adaptive", max_connections=20)
    assert ok == CALLS
    assert refused <= 0.1 * CALLS


async def test_a_fixed_rate_under_the_limit_is_never_refused(
    amili_sandbox: SandboxServer,
) -> None:
    clock = Lockstep()
    limiter = Released(FixedRate(0.8 * LIMIT, clock=clock.client_clock, sleep=clock.sleep), clock)
    ok, refused = await burst(amili_sandbox, clock.server_clock, rate_limit=limiter)
    assert (ok, refused) == (CALLS, 0)
    assert clock.now >= (CALLS - LIMIT * 0.1) / (0.8 * LIMIT)  # it was paced, not let through


async def test_a_rate_limited_sandbox_answers_429_with_retry_after(
    amili_sandbox: SandboxServer,
) -> None:
    amili_sandbox.set_rate_limit(LIMIT, clock=frozen)
    async with connect(amili_sandbox, max_retries=0, retry_budget=False) as client:
        org = amili_sandbox.default_org_id
        ids = seeded_ids(amili_sandbox)
        results = await asyncio.gather(
            *(client.invoices.get(org, i) for i in ids[:50]), return_exceptions=True
        )
    errors = [r for r in results if isinstance(r, AmiliError)]
    assert len(errors) == 50 - int(LIMIT * 0.1)  # all but the burst allowance
    assert all(getattr(e, "status_code", None) == 429 for e in errors)
    assert all(getattr(e, "retry_after", None) == 1 for e in errors)
