"""Webhook deliveries: signature verification, typed parsing of the documented examples,
unknown events, deduplication."""

from __future__ import annotations

from pathlib import Path

import pytest

from amili_async import models, webhooks

SECRET = "whsec-test"

EXAMPLES = {
    "webhooks-batch-completed-event.json": models.BatchCompletedEvent,
    "webhooks-settlement-created-event.json": models.SettlementCreatedEvent,
    "webhooks-case-event.json": models.CaseEvent,
    "webhooks-case-updated-event.json": models.CaseUpdatedEvent,
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_documented_examples_parse_to_their_event(docs_dir: Path, name: str) -> None:
    body = (docs_dir / "examples" / name).read_bytes()
    signature = webhooks.compute_signature(body, SECRET)
    event = webhooks.parse_event(body, {"X-Webhook-Signature": signature}, secret=SECRET)
    assert isinstance(event, EXAMPLES[name])


def test_batch_completed_fields(docs_dir: Path) -> None:
    body = (docs_dir / "examples" / "webhooks-batch-completed-event.json").read_bytes()
    event = webhooks.parse_event(body)
    assert isinstance(event, models.BatchCompletedEvent)
    assert event.data is not None
    assert event.data.status is models.BatchStatus.SUCCESS


def test_header_names_the_event_when_the_body_does_not() -> None:
    body = b'{"id": "e1", "data": {"batchId": "b", "status": "FAILED"}}'
    event = webhooks.parse_event(body, {"x-amili-event": "BATCH_COMPLETED"})
    assert isinstance(event, models.BatchCompletedEvent)


def test_signature_mismatch_and_missing_are_refused() -> None:
    body = b'{"type": "BATCH_COMPLETED"}'
    with pytest.raises(webhooks.WebhookError, match="does not match"):
        webhooks.parse_event(body, {"X-Webhook-Signature": "00" * 32}, secret=SECRET)
    with pytest.raises(webhooks.WebhookError, match="missing"):
        webhooks.parse_event(body, {}, secret=SECRET)
    tampered = b'{"type": "BATCH_COMPLETED", "x": 1}'
    good_for_other_body = webhooks.compute_signature(body, SECRET)
    with pytest.raises(webhooks.WebhookError):
        webhooks.parse_event(tampered, {"X-Webhook-Signature": good_for_other_body}, secret=SECRET)


def test_sha256_prefix_is_accepted() -> None:
    body = b'{"type": "SETTLEMENT_CREATED", "data": {"settlementDate": "2025-08-15"}}'
    header = "sha256=" + webhooks.compute_signature(body, SECRET)
    event = webhooks.parse_event(body, {"X-Webhook-Signature": header}, secret=SECRET)
    assert isinstance(event, models.SettlementCreatedEvent)


def test_unknown_event_type_is_kept_raw() -> None:
    event = webhooks.parse_event(b'{"type": "INVOICE_ARCHIVED", "data": {"a": 1}}')
    assert isinstance(event, webhooks.UnknownEvent)
    assert event.event_type == "INVOICE_ARCHIVED"
    assert event.payload["data"] == {"a": 1}


def test_bad_bodies_raise_webhook_error() -> None:
    with pytest.raises(webhooks.WebhookError, match="not JSON"):
        webhooks.parse_event(b"<html>")
    with pytest.raises(webhooks.WebhookError, match="object"):
        webhooks.parse_event(b"[1]")
    with pytest.raises(webhooks.WebhookError, match="BATCH_COMPLETED"):
        webhooks.parse_event(b'{"type": "BATCH_COMPLETED", "data": "not an object"}')


def test_deduplicator_remembers_recent_keys_only() -> None:
    dedup = webhooks.Deduplicator(size=2)
    assert not dedup.seen({"IdempotencyKey": "a"})
    assert dedup.seen({"idempotencykey": "a"})
    assert not dedup.seen({"IdempotencyKey": "b"})
    assert not dedup.seen({"IdempotencyKey": "c"})  # evicts "a", the least recently seen
    assert not dedup.seen({"IdempotencyKey": "a"})
    assert not dedup.seen({})  # no key: never a duplicate
    assert not dedup.seen({})
