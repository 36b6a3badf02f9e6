"""Webhook deliveries from Amili: verify the signature, parse into typed events, deduplicate.

The docs show the four events (BATCH_COMPLETED, SETTLEMENT_CREATED, CASE, CASE_UPDATED), their
payloads and the delivery headers (`X-Amili-Event`, `IdempotencyKey`, `X-Amili-Request-Id`,
`X-Webhook-Signature`), but not the signature algorithm. We infer the common scheme (HMAC-SHA256
of the raw body with the shared secret, hex, optionally prefixed `sha256=`); it lives in
`compute_signature` alone, so a different published scheme is a one-function change.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import attrs

from . import _serde, models
from ._config import IDEMPOTENCY_KEY_HEADER
from .errors import AmiliError

# Delivery headers, as the webhooks guide names them.
EVENT_HEADER = "X-Amili-Event"
SIGNATURE_HEADER = "X-Webhook-Signature"

WebhookEvent = (
    models.BatchCompletedEvent
    | models.SettlementCreatedEvent
    | models.CaseEvent
    | models.CaseUpdatedEvent
)

EVENT_MODELS: dict[str, type[Any]] = {
    "BATCH_COMPLETED": models.BatchCompletedEvent,
    "SETTLEMENT_CREATED": models.SettlementCreatedEvent,
    "CASE": models.CaseEvent,
    "CASE_UPDATED": models.CaseUpdatedEvent,
}

DEFAULT_DEDUP_SIZE = 10_000
"""Delivery keys remembered by `Deduplicator`: hours of traffic for a typical creditor, a few
hundred KB of memory; redeliveries come minutes apart, not days."""


class WebhookError(AmiliError):
    """A delivery that must not be trusted or cannot be read (answer it with 400)."""


@attrs.frozen
class UnknownEvent:
    """An event type this SDK version does not know: kept raw instead of failing."""

    event_type: str | None
    payload: Any


def compute_signature(body: bytes, secret: str | bytes) -> str:
    """The expected `X-Webhook-Signature` of a body (inferred scheme: HMAC-SHA256, hex)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: str | bytes) -> None:
    """Raise WebhookError unless `signature` matches the body (constant-time comparison)."""
    if not signature:
        raise WebhookError(f"missing {SIGNATURE_HEADER} header")
    given = signature.strip().removeprefix("sha256=")
    if not hmac.compare_digest(given.lower(), compute_signature(body, secret)):
        raise WebhookError("webhook signature does not match")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def parse_event(
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    secret: str | bytes | None = None,
) -> WebhookEvent | UnknownEvent:
    """Verify (when `secret` is given) and parse one delivery into its typed event.

    The event name comes from `X-Amili-Event`, else from the payload's `type` or `eventType`
    (the docs use both). Unknown event names give `UnknownEvent`, never an exception.
    """
    headers = headers or {}
    if secret is not None:
        verify_signature(body, _header(headers, SIGNATURE_HEADER), secret)
    try:
        payload = _serde.parse(body)
    except _serde.StructureError:
        raise WebhookError("webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookError("webhook body is not a JSON object")
    name = _header(headers, EVENT_HEADER) or payload.get("type") or payload.get("eventType")
    model = EVENT_MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        return UnknownEvent(event_type=name if isinstance(name, str) else None, payload=payload)
    try:
        event: WebhookEvent = _serde.structure(payload, model)
    except _serde.StructureError as error:
        raise WebhookError(f"{name} event: {error}") from error
    return event


class Deduplicator:
    """Remembers recent `IdempotencyKey`s so a redelivered event is processed once.

    In-process and bounded (least recently seen keys are forgotten first); a service with
    several replicas should keep the keys in its own database instead.
    """

    def __init__(self, size: int = DEFAULT_DEDUP_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def seen(self, headers: Mapping[str, str]) -> bool:
        """True if this delivery's key was seen before; records it otherwise.

        A delivery without the header is never treated as a duplicate.
        """
        key = _header(headers, IDEMPOTENCY_KEY_HEADER)
        if key is None:
            return False
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return False
