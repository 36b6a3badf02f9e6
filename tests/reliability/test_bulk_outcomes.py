"""Writes are never doubled, and item outcomes never lie.

What it proves, against the sandbox:

- `create_many` under connection drops *after* the server committed (drop_after, on POSTs and
  on the GETs that follow them) creates every invoice exactly once: no chunk makes a second
  batch, no item is reported "failed", and every item is "succeeded" or "unknown" with the
  idempotency key that finds its batch;
- when the lookups by idempotency key fail too (GetBatchesByOrganization answering 500, 429 or
  dropping), the outcome is reported "unknown", never "failed", after the lookups were retried;
  the key then finds the one batch the chunk made;
- a lookup answered with somebody else's batch (a server that ignores the IdempotencyKey
  filter) is not taken for the chunk's own;
- `retry_posts=False` (per client and per `with_options`) sends a POST that met a 503 exactly
  once, while the default retries it with the same IdempotencyKey; a 401 still refreshes.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from amili_async import AmiliClient, ServiceUnavailableError, bulk, models
from amili_async.bulk import ItemResult
from amili_async.sandbox import FaultConfig, SandboxConfig, SandboxServer

from .conftest import connect, local_server, new_invoice, sandbox_invoice_count

SEEDED = 20
KEY_HEADER = "IdempotencyKey"


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=SEEDED, seed=4, batch_delay=0.01)


@pytest.fixture
def quick_lookups(monkeypatch: pytest.MonkeyPatch) -> tuple[float, ...]:
    """The lookup retries' waits shortened (same number of lookups): the suite stays fast."""
    delays = (0.01, 0.01, 0.01, 0.01)
    assert len(delays) == len(bulk.LOOKUP_DELAYS)
    monkeypatch.setattr(bulk, "LOOKUP_DELAYS", delays)
    return delays


async def _invoices_by_source_id(client: AmiliClient, org: str, prefix: str) -> dict[str, int]:
    """How many invoices the API lists per uniqueSourceInvoiceId starting with `prefix`."""
    counts: dict[str, int] = {}
    async for invoice in client.invoices.list(org, page_size=1000):
        usid = invoice.unique_source_invoice_id
        if usid and usid.startswith(prefix):
            counts[usid] = counts.get(usid, 0) + 1
    return counts


async def _batches_by_key(client: AmiliClient, org: str) -> dict[str | None, list[models.Batch]]:
    found: dict[str | None, list[models.Batch]] = {}
    async for batch in client.batches.list(org, type="INVOICE", page_size=1000):
        found.setdefault(batch.idempotency_key, []).append(batch)
    return found


def _check_keys(results: list[ItemResult[Any]], chunk_size: int) -> dict[int, str]:
    """One key per chunk, carried by every item of it, distinct across chunks."""
    keys: dict[int, str] = {}
    for result in results:
        assert result.idempotency_key, result
        keys.setdefault(result.index // chunk_size, result.idempotency_key)
        assert result.idempotency_key == keys[result.index // chunk_size]
    assert len(set(keys.values())) == len(keys)
    return keys


async def test_drops_after_commit_create_every_invoice_exactly_once(
    amili_sandbox: SandboxServer, quick_lookups: tuple[float, ...]
) -> None:
    org = amili_sandbox.default_org_id
    items = [new_invoice(k, usid=f"drop-{k:04d}") for k in range(300)]
    attempts: list[int] = []
    # A third of every request (POSTs, batch polls, lookups) is processed, then its answer lost.
    amili_sandbox.set_faults(FaultConfig(drop_after=0.35, seed=17))

    async with connect(
        amili_sandbox, max_retries=1, on_request=lambda info: attempts.append(info.attempt)
    ) as client:
        results = [
            r
            async for r in client.invoices.create_many(
                org, items, chunk_size=25, concurrency=4, poll_interval=0.01
            )
        ]

    amili_sandbox.set_faults(None)
    assert max(attempts) > 1, "the drops must have forced retries"
    assert [r.index for r in results] == list(range(300))
    assert [r.outcome for r in results if r.outcome not in ("succeeded", "unknown")] == []
    keys = _check_keys(results, 25)
    async with connect(amili_sandbox) as client:
        # Every POST attempt was processed, so every chunk exists: once.
        assert await _invoices_by_source_id(client, org, "drop-") == {
            f"drop-{k:04d}": 1 for k in range(300)
        }
        batches = await _batches_by_key(client, org)
        assert sorted(k for k in batches if k) == sorted(keys.values())
        assert all(len(found) == 1 for found in batches.values())
        for result in results:
            (batch,) = batches[result.idempotency_key]
            if result.ok:
                assert result.batch_id == batch.batch_id
                assert result.succeeded is not None
                assert result.succeeded.unique_source_invoice_id == f"drop-{result.index:04d}"
            else:  # unknown: the key finds the batch that did create it
                assert result.batch_id in (None, batch.batch_id)
                assert result.error is not None
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 300


@pytest.mark.parametrize(
    "lookup_fault",
    [
        FaultConfig(rate_500=1.0),
        FaultConfig(drop_before=1.0),
        FaultConfig(rate_429=1.0, retry_after=0),
    ],
    ids=["500", "drop_before", "429"],
)
async def test_failing_lookups_leave_the_outcome_unknown_never_failed(
    amili_sandbox: SandboxServer, quick_lookups: tuple[float, ...], lookup_fault: FaultConfig
) -> None:
    """Every POST is committed and its answer lost; every lookup by its key fails."""
    org = amili_sandbox.default_org_id
    items = [new_invoice(k, usid=f"lost-{k:04d}") for k in range(30)]
    posts: list[str] = []
    lookups: list[str] = []

    def hook(info: Any) -> None:
        # concurrency=1: one request at a time, so the fault set here hits exactly this one.
        if info.method == "POST":
            posts.append(info.headers[KEY_HEADER])
            amili_sandbox.set_faults(FaultConfig(drop_after=1.0))
        elif info.url.endswith(f"/orgs/{org}/batches"):
            lookups.append(info.url)
            amili_sandbox.set_faults(lookup_fault)
        else:
            amili_sandbox.set_faults(None)

    async with connect(amili_sandbox, max_retries=0, on_request=hook) as client:
        results = [
            r
            async for r in client.invoices.create_many(
                org, items, chunk_size=10, concurrency=1, poll_interval=0.01
            )
        ]

    amili_sandbox.set_faults(None)
    assert [r.outcome for r in results] == ["unknown"] * 30
    assert all(not r.ok and r.failed is None and r.error is not None for r in results)
    keys = _check_keys(results, 10)
    assert posts == list(keys.values())  # one POST per chunk: never resent without knowing
    assert len(lookups) == 3 * (len(quick_lookups) + 1)  # each chunk's lookup was retried
    async with connect(amili_sandbox) as client:
        for key in keys.values():
            (batch,) = await client.batches.list(org, idempotency_key=key).collect()
            done = await client.batches.wait(org, batch.batch_id, poll_interval=0.01)
            assert done.status == models.BatchStatus.SUCCESS
        counts = await _invoices_by_source_id(client, org, "lost-")
    assert counts == {f"lost-{k:04d}": 1 for k in range(30)}


async def test_a_lookup_answered_with_another_batch_is_not_taken_for_the_chunk(
    quick_lookups: tuple[float, ...],
) -> None:
    foreign = {
        "batchId": "foreign-batch",
        "status": "SUCCESS",
        "type": "INVOICE",
        "idempotencyKey": "somebody-elses-key",
        "succeeded": [{"index": 0, "invoiceId": "foreign-invoice", "caseId": "foreign-case"}],
    }
    posts = 0
    app = web.Application()

    async def create(request: web.Request) -> web.Response:
        nonlocal posts
        posts += 1
        assert request.transport is not None
        request.transport.abort()  # the answer is lost: the outcome is unknown
        return web.Response(status=500)

    async def lookup(request: web.Request) -> web.Response:  # ignores ?IdempotencyKey=
        return web.json_response({"data": [foreign], "summary": {"status": "SUCCESS"}})

    async def batch(request: web.Request) -> web.Response:
        return web.json_response({"data": foreign})

    app.router.add_post("/collection/v1/orgs/{org}/invoices", create)
    app.router.add_get("/collection/v1/orgs/{org}/batches", lookup)
    app.router.add_get("/collection/v1/orgs/{org}/batches/{batch}", batch)
    async with local_server(app) as server, server.client(max_retries=0) as client:
        results = [
            r
            async for r in client.invoices.create_many(
                "org-1", [new_invoice(1)], concurrency=1, poll_interval=0.01
            )
        ]

    assert posts >= 1
    (result,) = results
    assert result.batch_id != "foreign-batch"
    assert result.outcome == "unknown"


class _PostFaults:
    """An on_request hook: per method, the fault the next attempt meets (one at a time)."""

    def __init__(self, server: SandboxServer, *, failing_posts: int) -> None:
        self.server = server
        self.failing_posts = failing_posts
        self.posts: list[str] = []
        self.gets = 0
        self.get_fault: FaultConfig | None = None

    def __call__(self, info: Any) -> None:
        if info.method == "POST":
            self.posts.append(info.headers[KEY_HEADER])
            failing = len(self.posts) <= self.failing_posts
            self.server.set_faults(FaultConfig(rate_503=1.0, retry_after=0) if failing else None)
        else:
            self.gets += 1
            self.server.set_faults(self.get_fault)


@pytest.mark.parametrize("how", ["client", "with_options"])
async def test_retry_posts_false_sends_a_failing_post_once(
    amili_sandbox: SandboxServer, how: str
) -> None:
    org = amili_sandbox.default_org_id
    hook = _PostFaults(amili_sandbox, failing_posts=100)
    options: dict[str, Any] = {"retry_posts": False} if how == "client" else {}
    async with connect(amili_sandbox, max_retries=5, on_request=hook, **options) as client:
        writer = client if how == "client" else client.with_options(retry_posts=False)
        with pytest.raises(ServiceUnavailableError):
            await writer.invoices.create(org, [new_invoice(1)])
        assert len(hook.posts) == 1
        assert await writer.batches.list(org).collect() == []

        # GETs are still retried: the switch is about POSTs only.
        hook.get_fault = FaultConfig(rate_503=1.0, retry_after=0)
        hook.gets = 0
        with pytest.raises(ServiceUnavailableError):
            await writer.invoices.list(org, prefetch=0).collect(limit=1)
        assert hook.gets == 1 + 5


async def test_posts_are_retried_with_the_same_key_by_default(
    amili_sandbox: SandboxServer,
) -> None:
    org = amili_sandbox.default_org_id
    hook = _PostFaults(amili_sandbox, failing_posts=1)
    async with connect(amili_sandbox, on_request=hook) as client:
        reference = await client.invoices.create(org, [new_invoice(1)])
        batch = await client.batches.wait(org, reference.batch_id, poll_interval=0.01)
        assert len(await client.batches.list(org).collect()) == 1

    assert len(hook.posts) == 2
    assert hook.posts[0] == hook.posts[1]
    assert batch.idempotency_key == hook.posts[0]
    assert batch.status == models.BatchStatus.SUCCESS
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 1


async def test_retry_posts_false_still_refreshes_a_rejected_token(
    amili_sandbox: SandboxServer,
) -> None:
    """A 401 means the server refused before doing anything: the one safe POST resend."""
    org = amili_sandbox.default_org_id
    tokens = [amili_sandbox.issue_token(lifetime=-10), amili_sandbox.issue_token()]
    posts: list[str] = []

    async with AmiliClient(
        token_provider=lambda: tokens.pop(0),
        base_url=amili_sandbox.base_url,
        retry_posts=False,
        on_request=lambda info: posts.append(info.method) if info.method == "POST" else None,
    ) as client:
        reference = await client.invoices.create(org, [new_invoice(1)])
        await client.batches.wait(org, reference.batch_id, poll_interval=0.01)

    assert posts == ["POST", "POST"]
    assert tokens == []
    assert sandbox_invoice_count(amili_sandbox) == SEEDED + 1


async def test_retry_posts_false_is_honoured_by_create_many(
    amili_sandbox: SandboxServer,
) -> None:
    org = amili_sandbox.default_org_id
    hook = _PostFaults(amili_sandbox, failing_posts=1)
    async with connect(amili_sandbox, retry_posts=False, on_request=hook) as client:
        results = [
            r
            async for r in client.invoices.create_many(
                org, [new_invoice(1)], concurrency=1, poll_interval=0.01
            )
        ]

    assert len(hook.posts) == 1
    assert [r.outcome for r in results] == ["unknown"]
