"""Client-side rate control against the sandbox's per-client rate limit, over loopback."""

from __future__ import annotations

import asyncio

import pytest

from amili_async import AmiliError
from amili_async.sandbox import SandboxConfig, SandboxServer

from .conftest import connect, seeded_ids

LIMIT = 100.0  # requests per second the sandbox grants each client
CALLS = 250  # 2.5 s of traffic at the limit: a few adaptive cycles, a short test


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=CALLS, seed=4, rate_limit=LIMIT)


async def burst(server: SandboxServer, **client_options: object) -> tuple[int, int]:
    """CALLS concurrent GetInvoiceById calls: (successes, 429 answers the sandbox gave)."""
    throttle = server.set_rate_limit(LIMIT)
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
    ok, refused = await burst(amili_sandbox)
    assert refused > CALLS  # most first tries and many retries met a 429
    assert ok < CALLS  # and some calls ran out of retries


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
    ok, refused = await burst(amili_sandbox, rate_limit=0.8 * LIMIT)
    assert (ok, refused) == (CALLS, 0)


async def test_a_rate_limited_sandbox_answers_429_with_retry_after(
    amili_sandbox: SandboxServer,
) -> None:
    async with connect(amili_sandbox, max_retries=0, retry_budget=False) as client:
        org = amili_sandbox.default_org_id
        ids = seeded_ids(amili_sandbox)
        results = await asyncio.gather(
            *(client.invoices.get(org, i) for i in ids[:50]), return_exceptions=True
        )
    errors = [r for r in results if isinstance(r, AmiliError)]
    assert errors, "a burst of 50 over a burst allowance of 10 must meet a 429"
    assert all(getattr(e, "status_code", None) == 429 for e in errors)
    assert all(getattr(e, "retry_after", None) == 1 for e in errors)
