"""Webhook deliveries: signature verification, typed parsing of the documented examples, both
spellings of the event name and organisation, unknown events, the de-duplication store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amili_async import models, webhooks
from amili_async.wire import to_json

SECRET = "whsec-test"

EXAMPLES = {
    "webhooks-batch-completed-event.json": models.BatchCompletedEvent,
    "webhooks-settlement-created-event.json": models.SettlementCreatedEvent,
    "webhooks-case-event.json": models.CaseEvent,
    "webhooks-case-updated-event.json": models.CaseUpdatedEvent,
}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Webhook-Signature": webhooks.compute_signature(body, secret)}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_documented_examples_parse_to_their_event(docs_dir: Path, name: str) -> None:
    body = (docs_dir / "examples" / name).read_bytes()
    event = webhooks.parse_event(body, signed(body), secret=SECRET)
    assert isinstance(event, EXAMPLES[name])
    assert not isinstance(event, webhooks.UnknownEvent)
    assert event.id == "897e1f80-ceb5-4b58-a2aa-c895aff6ce3e"
    assert event.data is not None


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_event_names_its_type_in_event_type(docs_dir: Path, name: str) -> None:
    """One attribute on every event, whether the wire says `type` or `eventType` (issue 25)."""
    body = (docs_dir / "examples" / name).read_bytes()
    event = webhooks.parse_event(body)
    assert not isinstance(event, webhooks.UnknownEvent)
    wire = json.loads(body)
    assert event.event_type == (wire.get("type") or wire["eventType"])
    if "type" in wire:  # the deprecated alias of the two events that spell it `type`
        assert event.type == event.event_type  # type: ignore[union-attr]
    assert json.loads(to_json(event))["type" if "type" in wire else "eventType"] == event.event_type
    unknown = webhooks.parse_event(b'{"type": "NEW_KIND"}')
    assert isinstance(unknown, webhooks.UnknownEvent)
    assert unknown.event_type == "NEW_KIND"


def test_batch_completed_fields(docs_dir: Path) -> None:
    body = (docs_dir / "examples" / "webhooks-batch-completed-event.json").read_bytes()
    event = webhooks.parse_event(body)
    assert isinstance(event, models.BatchCompletedEvent)
    assert event.event_type is models.WebhookEventType.BATCH_COMPLETED
    assert event.data is not None
    assert event.data.status is models.BatchStatus.SUCCESS
    assert event.data.organization_id == "db6a7ff4-3a20-4042-b271-a9485ded6334"


def test_case_updated_fields(docs_dir: Path) -> None:
    body = (docs_dir / "examples" / "webhooks-case-updated-event.json").read_bytes()
    event = webhooks.parse_event(body)
    assert isinstance(event, models.CaseUpdatedEvent)
    assert event.event_type is models.WebhookEventType.CASE_UPDATED
    assert event.data is not None
    assert event.data.org_id == "db6a7ff4-3a20-4042-b271-a9485ded6334"
    assert event.data.status is models.CaseStatus.PAUSED
    assert event.data.fields == ["amounts", "status", "type", "description"]


@pytest.mark.parametrize(
    ("name", "swap"),
    [
        ("webhooks-batch-completed-event.json", {"type": "eventType"}),
        ("webhooks-settlement-created-event.json", {"type": "eventType"}),
        ("webhooks-case-event.json", {"eventType": "type"}),
        ("webhooks-case-updated-event.json", {"eventType": "type"}),
    ],
)
def test_either_spelling_fills_the_same_attributes(
    docs_dir: Path, name: str, swap: dict[str, str]
) -> None:
    payload = json.loads((docs_dir / "examples" / name).read_bytes())
    original = webhooks.parse_event(json.dumps(payload).encode())
    for old, new in swap.items():
        payload[new] = payload.pop(old)
    org = "orgId" if "orgId" in payload["data"] else "organizationId"
    other = "organizationId" if org == "orgId" else "orgId"
    payload["data"][other] = payload["data"].pop(org)
    respelled = webhooks.parse_event(json.dumps(payload).encode())
    assert type(respelled) is EXAMPLES[name]
    assert respelled == original


def test_two_spellings_that_disagree_are_refused() -> None:
    with pytest.raises(webhooks.WebhookError, match="two different event types"):
        webhooks.parse_event(b'{"type": "CASE", "eventType": "CASE_UPDATED"}')
    body = b'{"type": "BATCH_COMPLETED", "data": {"orgId": "a", "organizationId": "b"}}'
    with pytest.raises(webhooks.WebhookError, match="two different organization ids"):
        webhooks.parse_event(body)


def test_header_names_the_event_when_the_body_does_not() -> None:
    body = b'{"id": "e1", "data": {"batchId": "b", "status": "FAILED"}}'
    event = webhooks.parse_event(body, {"x-amili-event": "BATCH_COMPLETED"})
    assert isinstance(event, models.BatchCompletedEvent)


def test_header_that_contradicts_the_signed_payload_is_refused(docs_dir: Path) -> None:
    body = (docs_dir / "examples" / "webhooks-case-event.json").read_bytes()
    headers = {**signed(body), "X-Amili-Event": "SETTLEMENT_CREATED"}
    with pytest.raises(webhooks.WebhookError, match="disagrees"):
        webhooks.parse_event(body, headers, secret=SECRET)
    agreeing = {**signed(body), "X-Amili-Event": "CASE"}
    assert isinstance(webhooks.parse_event(body, agreeing, secret=SECRET), models.CaseEvent)


def test_signature_mismatch_and_missing_are_refused() -> None:
    body = b'{"type": "BATCH_COMPLETED"}'
    with pytest.raises(webhooks.WebhookSignatureError, match="does not match"):
        webhooks.parse_event(body, {"X-Webhook-Signature": "00" * 32}, secret=SECRET)
    with pytest.raises(webhooks.WebhookSignatureError, match="missing"):
        webhooks.parse_event(body, {}, secret=SECRET)
    with pytest.raises(webhooks.WebhookSignatureError, match="does not match"):
        webhooks.parse_event(body, signed(body, "another-secret"), secret=SECRET)
    tampered = b'{"type": "BATCH_COMPLETED", "x": 1}'
    with pytest.raises(webhooks.WebhookSignatureError, match="does not match"):
        webhooks.parse_event(tampered, signed(body), secret=SECRET)


@pytest.mark.parametrize("signature", ["", "   ", "sha256=", "zz" * 32, "ab" * 31, "é" * 64])
def test_malformed_signatures_are_a_webhook_error_not_a_type_error(signature: str) -> None:
    body = b'{"type": "BATCH_COMPLETED"}'
    with pytest.raises(webhooks.WebhookSignatureError, match=r"missing|malformed"):
        webhooks.verify_signature(body, signature, SECRET)


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        webhooks.compute_signature(b"{}", "")
    with pytest.raises(ValueError, match="empty"):
        webhooks.HmacSha256Verifier(b"")
    with pytest.raises(ValueError, match="empty"):
        webhooks.parse_event(b"{}", {"X-Webhook-Signature": "00" * 32}, secret="")


def test_sha256_prefix_and_upper_case_hex_are_accepted() -> None:
    body = b'{"type": "SETTLEMENT_CREATED", "data": {"settlementDate": "2025-08-15"}}'
    for value in (
        "sha256=" + webhooks.compute_signature(body, SECRET),
        webhooks.compute_signature(body, SECRET).upper(),
    ):
        event = webhooks.parse_event(body, {"X-Webhook-Signature": value}, secret=SECRET)
        assert isinstance(event, models.SettlementCreatedEvent)


def test_timestamp_window_refuses_replays_and_unsigned_timestamps() -> None:
    now = 1_750_000_000.0
    verifier = webhooks.HmacSha256Verifier(
        SECRET, timestamp_header="X-Webhook-Timestamp", tolerance=300, clock=lambda: now
    )
    assert isinstance(verifier, webhooks.Verifier)
    body = b'{"type": "CASE"}'

    def headers(ts: int, signed_ts: int | None = None) -> dict[str, str]:
        stamp = str(ts if signed_ts is None else signed_ts)
        return {
            "X-Webhook-Timestamp": str(ts),
            "X-Webhook-Signature": webhooks.compute_signature(body, SECRET, stamp),
        }

    verifier.verify(body, headers(int(now) - 299))
    with pytest.raises(webhooks.WebhookSignatureError, match="tolerance"):
        verifier.verify(body, headers(int(now) - 301))
    with pytest.raises(webhooks.WebhookSignatureError, match="does not match"):
        verifier.verify(body, headers(int(now), signed_ts=int(now) - 1000))  # timestamp moved
    with pytest.raises(webhooks.WebhookSignatureError, match="missing"):
        verifier.verify(body, signed(body))
    with pytest.raises(webhooks.WebhookSignatureError, match="malformed"):
        verifier.verify(body, {**headers(int(now)), "X-Webhook-Timestamp": "１２３"})


def test_the_secret_is_not_in_the_verifiers_repr() -> None:
    assert SECRET not in repr(webhooks.HmacSha256Verifier(SECRET))


def test_unknown_event_type_is_kept_raw() -> None:
    event = webhooks.parse_event(b'{"type": "INVOICE_ARCHIVED", "data": {"a": 1}}')
    assert isinstance(event, webhooks.UnknownEvent)
    assert event.event_type == "INVOICE_ARCHIVED"
    assert event.payload["data"] == {"a": 1}
    nameless = webhooks.parse_event(b'{"data": {}}')
    assert isinstance(nameless, webhooks.UnknownEvent)
    assert nameless.event_type is None


def test_bad_bodies_raise_webhook_error() -> None:
    with pytest.raises(webhooks.WebhookError, match="not JSON"):
        webhooks.parse_event(b"<html>")
    with pytest.raises(webhooks.WebhookError, match="object"):
        webhooks.parse_event(b"[1]")
    with pytest.raises(webhooks.WebhookError, match="BATCH_COMPLETED"):
        webhooks.parse_event(b'{"type": "BATCH_COMPLETED", "data": "not an object"}')


async def test_memory_store_claims_completes_releases_and_forgets() -> None:
    now = [0.0]
    store = webhooks.MemoryDedupeStore(max_keys=2, ttl=60, clock=lambda: now[0])
    assert isinstance(store, webhooks.DedupeStore)
    assert await store.claim("a") == "claimed"
    assert await store.claim("a") == "busy"
    await store.release("a")
    assert await store.claim("a") == "claimed"
    await store.complete("a")
    assert await store.claim("a") == "done"
    for key in ("b", "c"):  # "c" pushes out "a", the oldest
        assert await store.claim(key) == "claimed"
        await store.complete(key)
    assert len(store) == 2
    assert await store.claim("a") == "claimed"
    await store.release("a")
    now[0] = 61.0  # past the ttl: every key is forgotten
    assert len(store) == 0
    assert await store.claim("b") == "claimed"


def test_memory_store_refuses_nonsense_bounds() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        webhooks.MemoryDedupeStore(max_keys=0)
    with pytest.raises(ValueError, match="ttl"):
        webhooks.MemoryDedupeStore(ttl=0)


def _variants(payload: dict[str, object]) -> list[bytes]:
    """The payload and the spellings, headers' cases and odd values around it."""
    data = payload["data"]
    assert isinstance(data, dict)
    name_key = "type" if "type" in payload else "eventType"
    org_key = "orgId" if "orgId" in data else "organizationId"
    other_name = "eventType" if name_key == "type" else "type"
    other_org = "organizationId" if org_key == "orgId" else "orgId"
    changes: list[dict[str, object]] = [
        {},
        {other_name: payload[name_key]},  # both spellings, agreeing
        {other_name: "SOMETHING_ELSE"},  # both, disagreeing
        {"data": {**data, other_org: data[org_key]}},
        {"data": {**data, other_org: ""}},
        {"data": {**data, other_org: "another-org"}},
        {"data": {k: v for k, v in data.items() if k != org_key}},
        {"data": None},
        {"data": [1]},
        {name_key: f" {payload[name_key]} "},
        {name_key: 7},
        {"id": None},
        {"timeStamp": "not a time"},
    ]
    return [json.dumps({**payload, **change}).encode() for change in changes]


def _outcome(body: bytes, headers: dict[str, str]) -> object:
    try:
        return webhooks.parse_event(body, headers)
    except webhooks.WebhookError as error:
        return ("error", str(error))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_typed_read_agrees_with_the_general_path(
    docs_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amili_async.webhooks import _parse

    payload = json.loads((docs_dir / "examples" / name).read_bytes())
    event_name = payload.get("type") or payload.get("eventType")
    cases = [
        (body, headers)
        for body in _variants(payload)
        for headers in ({}, {"X-Amili-Event": event_name}, {"X-Amili-Event": " CASE "})
    ]
    typed = [_outcome(body, headers) for body, headers in cases]
    taken = sum(_parse._as_declared(body, headers) is not None for body, headers in cases)
    assert taken >= 4  # the documented spelling, with and without the header, at least
    monkeypatch.setattr(_parse, "_as_declared", lambda body, headers: None)
    assert [_outcome(body, headers) for body, headers in cases] == typed
