"""Webhooks end to end over loopback: the sandbox delivers, signed, to a real
`webhook_handler`; retries until 2xx; duplicate deliveries get one callback; the admin endpoint,
the CLI listener and the pytest fixture."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from amili_async import models, webhooks
from amili_async._cli._webhooks import add_sandbox_options, sandbox_settings
from amili_async.sandbox import (
    DEFAULT_WEBHOOK_SECRET,
    WEBHOOKS_PATH,
    EventBus,
    SandboxConfig,
    SandboxServer,
)

from .conftest import connect, created_invoice, new_invoice, run_cli
from .test_plugin import INNER_OPTIONS

WAIT = 10.0  # seconds any awaited delivery may take on a loaded 2-core machine


def _is(kind: type[Any], **ids: str) -> Callable[[Any], bool]:
    def match(event: Any) -> bool:
        data = getattr(event, "data", None)
        return isinstance(event, kind) and all(bool(getattr(data, k) == v) for k, v in ids.items())

    return match


@pytest.fixture
async def receiver() -> AsyncIterator[webhooks.WebhookReceiver]:
    async with webhooks.WebhookReceiver(secret="e2e-webhook-secret") as receiver:
        yield receiver


@pytest.fixture
async def sandbox(receiver: webhooks.WebhookReceiver) -> AsyncIterator[SandboxServer]:
    config = SandboxConfig(
        invoices=5, batch_delay=0, webhook_urls=(receiver.url,), webhook_secret="e2e-webhook-secret"
    )
    async with SandboxServer(config) as server:
        yield server


async def test_invoices_and_a_pause_reach_the_handler_with_matching_ids(
    sandbox: SandboxServer, receiver: webhooks.WebhookReceiver
) -> None:
    org = sandbox.default_org_id
    async with connect(sandbox) as client:
        batch, invoice = await created_invoice(client, org, new_invoice(1))
        assert batch.succeeded is not None
        case_id = batch.succeeded[0].case_id
        assert case_id is not None
        await client.collections.pause_case(org, case_id, reason="Debtor called")

    (done,) = await receiver.wait_for(
        match=_is(models.BatchCompletedEvent, batch_id=batch.batch_id), timeout=WAIT
    )
    (opened,) = await receiver.wait_for(match=_is(models.CaseEvent, case_id=case_id), timeout=WAIT)
    (paused,) = await receiver.wait_for(
        match=_is(models.CaseUpdatedEvent, case_id=case_id), timeout=WAIT
    )
    assert isinstance(done, models.BatchCompletedEvent)
    assert done.data is not None
    assert done.data.organization_id == org
    assert done.data.status is models.BatchStatus.SUCCESS
    assert isinstance(opened, models.CaseEvent)
    assert opened.data is not None
    assert opened.data.org_id == org
    assert opened.data.status is models.CaseStatus.OPEN
    assert opened.data.invoices == [invoice.id]
    assert opened.data.case_number == invoice.collection_case_number
    assert isinstance(paused, models.CaseUpdatedEvent)
    assert paused.data is not None
    assert paused.data.status is models.CaseStatus.PAUSED
    assert paused.data.fields == ["status"]
    # Every delivery carried the documented headers and was acknowledged on the first attempt.
    log = await sandbox.webhooks.wait_for(lambda log: len(log) >= 3, timeout=WAIT)
    assert {e["event"] for e in log} == {"BATCH_COMPLETED", "CASE", "CASE_UPDATED"}
    assert all(e["status"] == 200 and e["attempt"] == 1 for e in log)


async def test_a_payment_delivers_settlement_created_and_case_updated(
    sandbox: SandboxServer, receiver: webhooks.WebhookReceiver
) -> None:
    org = sandbox.default_org_id
    async with connect(sandbox) as client:
        created, invoice = await created_invoice(client, org, new_invoice(2, amount="100.00"))
        assert created.succeeded is not None
        case_id = created.succeeded[0].case_id
        assert case_id is not None
        payment = models.NewPayment(
            invoice_id=invoice.id,
            type=models.PaymentType.DIRECT_PAYMENT,
            amount=Decimal("100.00"),
            currency="NOK",
            payment_date=dt.date(2024, 6, 3),
            reference="bank-ref-1",
        )
        reference = await client.payments.create(org, [payment])
        await client.batches.wait(org, reference.batch_id, poll_interval=0.01)

    (settled,) = await receiver.wait_for(
        match=_is(models.SettlementCreatedEvent, invoice_id=invoice.id), timeout=WAIT
    )
    assert isinstance(settled, models.SettlementCreatedEvent)
    assert settled.data is not None
    assert settled.data.organization_id == org
    (closed,) = await receiver.wait_for(
        match=_is(models.CaseUpdatedEvent, case_id=case_id), timeout=WAIT
    )
    assert isinstance(closed, models.CaseUpdatedEvent)
    assert closed.data is not None
    assert closed.data.status is models.CaseStatus.CLOSED
    assert closed.data.fields == ["amounts", "status"]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def test_a_receiver_answering_500_is_retried_until_2xx_with_one_callback() -> None:
    """The first two attempts of every delivery get 500 (before the handler runs); the third
    reaches the handler. Registration and the log go through the admin endpoint."""
    attempts: Counter[str] = Counter()
    calls: list[Any] = []

    @web.middleware
    async def fail_twice(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.headers["IdempotencyKey"]
        attempts[key] += 1
        if attempts[key] <= 2:
            return web.Response(status=500)
        return await handler(request)

    app = web.Application(middlewares=[fail_twice])
    secret = "retry-secret"
    app.router.add_post("/hook", webhooks.webhook_handler(calls.append, secret=secret))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        config = SandboxConfig(invoices=1, batch_delay=0, webhook_secret=secret)
        async with SandboxServer(config) as server, aiohttp.ClientSession() as http:
            admin = server.origin + WEBHOOKS_PATH
            async with http.post(admin, json={"url": url}) as response:
                assert response.status == 201
                assert (await response.json())["urls"] == [url]
            async with connect(server) as client:
                batch, _ = await created_invoice(client, server.default_org_id, new_invoice(3))

            def acknowledged(log: list[dict[str, Any]]) -> bool:
                return sum(e["status"] == 200 for e in log) == 2  # CASE and BATCH_COMPLETED

            await server.webhooks.wait_for(acknowledged, timeout=WAIT)
            async with http.get(admin) as response:
                deliveries = (await response.json())["deliveries"]
    finally:
        await runner.cleanup()

    by_key: dict[str, list[dict[str, Any]]] = {}
    for entry in deliveries:
        by_key.setdefault(entry["idempotencyKey"], []).append(entry)
    assert len(by_key) == 2
    for entries in by_key.values():
        assert [e["status"] for e in entries] == [500, 500, 200]
        assert [e["attempt"] for e in entries] == [1, 2, 3]
        assert len({e["requestId"] for e in entries}) == 3  # a new request id per attempt
        assert len({e["eventId"] for e in entries}) == 1
    assert sorted(type(e).__name__ for e in calls) == ["BatchCompletedEvent", "CaseEvent"]
    batch_events = [e for e in calls if isinstance(e, models.BatchCompletedEvent)]
    assert batch_events[0].data is not None
    assert batch_events[0].data.batch_id == batch.batch_id


async def test_duplicate_deliveries_get_exactly_one_callback(
    sandbox: SandboxServer, receiver: webhooks.WebhookReceiver
) -> None:
    sandbox.webhooks.duplicates = 1.0  # every delivery is sent twice at once
    async with connect(sandbox) as client:
        await created_invoice(client, sandbox.default_org_id, new_invoice(4))

    def both_copies_acknowledged(log: list[dict[str, Any]]) -> bool:
        acks = Counter(e["idempotencyKey"] for e in log if e["status"] == 200)
        return len(acks) == 2 and set(acks.values()) == {2}

    log = await sandbox.webhooks.wait_for(both_copies_acknowledged, timeout=WAIT)
    assert len(receiver.events) == 2  # CASE and BATCH_COMPLETED, once each
    assert {type(e) for e in receiver.events} == {models.CaseEvent, models.BatchCompletedEvent}
    # A copy that arrived while the first was in flight was answered 503, then retried.
    assert {e["status"] for e in log} <= {200, 503}


async def test_admin_endpoint_registers_refuses_bad_input_and_ignores_faults() -> None:
    config = SandboxConfig(invoices=1)
    async with SandboxServer(config) as server, aiohttp.ClientSession() as http:
        server.set_faults("503=1.0")  # every API request fails; the admin endpoint does not
        admin = server.origin + WEBHOOKS_PATH
        async with http.post(admin, json={"url": "ftp://example.invalid/x"}) as response:
            assert response.status == 400
        async with http.post(admin, json={"duplicates": 2}) as response:
            assert response.status == 400
        async with http.post(admin, json={}) as response:
            assert response.status == 400
        async with http.delete(admin, json={"url": "http://127.0.0.1:9/x"}) as response:
            assert response.status == 404
        async with http.post(admin, json={"duplicates": 0.5}) as response:
            assert response.status == 201
            assert (await response.json())["duplicates"] == 0.5
        assert not server.events.wants("CASE")  # no receiver: case events are not even built
        url = "http://127.0.0.1:9/hook"
        async with http.post(admin, json={"url": url}) as response:
            assert (await response.json())["urls"] == [url]
        assert server.events.wants("CASE")
        async with http.delete(admin, json={"url": url}) as response:
            assert response.status == 200
        assert not server.events.wants("CASE")
        async with http.get(admin) as response:
            snapshot = await response.json()
        assert snapshot["urls"] == []
        assert config.webhook_secret not in json.dumps(snapshot)
        assert config.webhook_secret not in repr(server.webhooks)
        assert config.webhook_secret not in repr(config)


async def test_a_full_queue_drops_deliveries_instead_of_blocking_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amili_async.sandbox import _webhooks

    monkeypatch.setattr(_webhooks, "QUEUE_SIZE", 2)
    config = SandboxConfig(invoices=1, webhook_urls=("http://127.0.0.1:9/unreachable",))
    dispatcher = _webhooks.WebhookDispatcher(config, events := EventBus())
    for n in range(5):  # no worker runs: nothing leaves the queue
        events.publish("CASE", {"caseId": str(n)})
    assert dispatcher.snapshot()["pending"] == 2
    assert dispatcher.dropped == 3


async def test_cli_listen_prints_each_verified_event_on_one_line() -> None:
    env = {**os.environ, "AMILI_WEBHOOK_SECRET": "cli-secret"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amili_async",
        "webhooks",
        "listen",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(WAIT):
            banner = (await proc.stderr.readline()).decode()
        assert banner.startswith("listening for Amili webhooks on http://127.0.0.1:")
        url = banner.rsplit(" ", 1)[1].strip()
        config = SandboxConfig(
            invoices=1, batch_delay=0, webhook_urls=(url,), webhook_secret="cli-secret"
        )
        async with SandboxServer(config) as server, connect(server) as client:
            batch, _ = await created_invoice(client, server.default_org_id, new_invoice(5))
            lines: list[dict[str, Any]] = []
            async with asyncio.timeout(WAIT):
                while len(lines) < 2:
                    lines.append(json.loads(await proc.stdout.readline()))
    finally:
        proc.terminate()
        await proc.communicate()
    kinds = {line.get("type") or line.get("eventType") for line in lines}
    assert kinds == {"CASE", "BATCH_COMPLETED"}
    assert [line["data"]["batchId"] for line in lines if line.get("type")] == [batch.batch_id]
    assert "cli-secret" not in banner


def test_the_plugin_fixture_receives_the_sandboxes_events(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
from amili_async import models


async def test_events(amili_sandbox, amili_client, amili_webhook_receiver):
    amili_sandbox.webhooks.register(amili_webhook_receiver.url)
    case_id = amili_sandbox.state.default_org.seeded.case_id(0)
    await amili_client.collections.pause_case(amili_sandbox.default_org_id, case_id)
    (event,) = await amili_webhook_receiver.wait_for(timeout=10)
    assert isinstance(event, models.CaseUpdatedEvent)
    assert event.data.case_id == case_id
    assert amili_webhook_receiver.events == [event]
"""
    )
    result = pytester.runpytest(*INNER_OPTIONS)
    result.assert_outcomes(passed=1)


def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's webhook example, run as written: the sandbox's events reach the handler."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    marker = "<!-- webhook-example: tests/e2e/test_webhooks.py runs this block -->\n```python\n"
    start = readme.index(marker) + len(marker)
    code = readme[start : readme.index("```", start)]
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    lines = capsys.readouterr().out.splitlines()
    # Deliveries run concurrently: the three events may arrive in any order.
    assert sorted(line.split()[1] for line in lines) == ["completed", "opened", "updated"]
    assert any("PAUSED" in line and "['status']" in line for line in lines)


async def test_timestamped_deliveries_pass_the_replay_window() -> None:
    header = "X-Webhook-Timestamp"
    verifier = webhooks.HmacSha256Verifier("ts-secret", timestamp_header=header, tolerance=60)
    async with webhooks.WebhookReceiver(verifier=verifier) as receiver:
        config = SandboxConfig(
            invoices=1,
            webhook_urls=(receiver.url,),
            webhook_secret="ts-secret",
            webhook_timestamp_header=header,
        )
        async with SandboxServer(config) as server, connect(server) as client:
            seeded = server.state.default_org.seeded
            assert seeded is not None
            await client.collections.pause_case(server.default_org_id, seeded.case_id(0))
            (event,) = await receiver.wait_for(timeout=WAIT)
            log = await server.webhooks.wait_for(lambda log: len(log) >= 1, timeout=WAIT)
    assert isinstance(event, models.CaseUpdatedEvent)
    assert [e["status"] for e in log] == [200]


def test_sandbox_webhook_flags_become_its_config() -> None:
    parser = argparse.ArgumentParser()
    add_sandbox_options(parser)
    args = parser.parse_args(
        [
            "--webhook-url",
            "http://127.0.0.1:8090/a",
            "--webhook-url",
            "http://127.0.0.1:8090/b",
            "--webhook-secret",
            "S",
            "--webhook-duplicates",
            "0.25",
        ]
    )
    config = SandboxConfig(**sandbox_settings(args))
    assert config.webhook_urls == ("http://127.0.0.1:8090/a", "http://127.0.0.1:8090/b")
    assert config.webhook_secret == "S"
    assert config.webhook_duplicates == 0.25
    defaults = SandboxConfig(**sandbox_settings(parser.parse_args([])))
    assert defaults.webhook_secret == DEFAULT_WEBHOOK_SECRET
    assert defaults.webhook_urls == ()
    with pytest.raises(SystemExit) as refused:  # a bad argument: exit 2 (_cli/_args.py)
        parser.parse_args(["--webhook-duplicates", "2"])
    assert refused.value.code == 2


async def test_every_delivered_payload_has_the_fields_of_the_docs_example(
    sandbox: SandboxServer, receiver: webhooks.WebhookReceiver, docs_dir: Path
) -> None:
    examples = {
        "BATCH_COMPLETED": "webhooks-batch-completed-event.json",
        "SETTLEMENT_CREATED": "webhooks-settlement-created-event.json",
        "CASE": "webhooks-case-event.json",
        "CASE_UPDATED": "webhooks-case-updated-event.json",
    }
    bodies: dict[str, dict[str, Any]] = {}

    def keep(event: Any) -> None:
        bodies.setdefault(event.type, event.to_dict())

    unsubscribe = sandbox.events.subscribe(keep, tuple(examples))
    try:
        org = sandbox.default_org_id
        async with connect(sandbox) as client:
            _, invoice = await created_invoice(client, org, new_invoice(6, amount="10.00"))
            payment = models.NewPayment(
                invoice_id=invoice.id,
                type=models.PaymentType.DIRECT_PAYMENT,
                amount=Decimal("10.00"),
                currency="NOK",
                payment_date=dt.date(2024, 6, 3),
            )
            reference = await client.payments.create(org, [payment])
            await client.batches.wait(org, reference.batch_id, poll_interval=0.01)
    finally:
        unsubscribe()
    assert set(bodies) == set(examples)
    for name, file in examples.items():
        example = json.loads((docs_dir / "examples" / file).read_text())
        assert set(bodies[name]) == set(example), name
        assert set(bodies[name]["data"]) == set(example["data"]), name
    # And every one of them reached the handler, signed and parsed into its typed event.
    await receiver.wait_for(5, timeout=WAIT)  # CASE, 2 x BATCH_COMPLETED, settlement, update
    assert {type(e) for e in receiver.events} == set(webhooks.EVENT_MODELS.values())


async def test_a_failed_callback_is_redelivered_and_then_handled_once() -> None:
    failed: list[str] = []

    def flaky(event: Any) -> None:
        if event.id not in failed:  # the first delivery of every event fails in the callback
            failed.append(event.id)
            raise RuntimeError("downstream unavailable")

    async with webhooks.WebhookReceiver(secret="flaky-secret", on_event=flaky) as receiver:
        config = SandboxConfig(
            invoices=1, webhook_urls=(receiver.url,), webhook_secret="flaky-secret"
        )
        async with SandboxServer(config) as server, connect(server) as client:
            seeded = server.state.default_org.seeded
            assert seeded is not None
            await client.collections.pause_case(server.default_org_id, seeded.case_id(0))
            (event,) = await receiver.wait_for(timeout=WAIT)
            log = await server.webhooks.wait_for(
                lambda log: any(e["status"] == 200 for e in log), timeout=WAIT
            )
    assert isinstance(event, models.CaseUpdatedEvent)
    assert failed == [event.id]
    assert [e["status"] for e in log] == [500, 200]
    assert len({e["idempotencyKey"] for e in log}) == 1


def test_a_bad_webhook_url_in_the_config_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        SandboxServer(SandboxConfig(invoices=1, webhook_urls=("127.0.0.1:8090/hook",)))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--store", "/nonexistent-dir/webhooks.db"], "--store: cannot open it"),
        (["--callback-timeout", "600"], "callback_timeout must be shorter than the store's lease"),
    ],
)
async def test_cli_listen_refuses_a_store_it_cannot_open_and_a_timeout_past_the_lease(
    flags: list[str], message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_")}
    args = ("webhooks", "listen", "--port", "0", "--secret", "s", *flags)
    run = await run_cli(*args, env=env, timeout=60)
    assert run.code == 1
    assert message in run.stderr
    assert "listening" not in run.stderr
