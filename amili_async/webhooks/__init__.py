"""Webhook deliveries from Amili: verify, parse into typed events, de-duplicate, receive.

The docs show the four events (BATCH_COMPLETED, SETTLEMENT_CREATED, CASE, CASE_UPDATED), their
payloads and the delivery headers (`X-Amili-Event`, `IdempotencyKey`, `X-Amili-Request-Id`,
`X-Webhook-Signature`), but not the signature algorithm, the retry policy or the expected
answer. Inferred, each in one place: the signature scheme (`_verify.compute_signature`), the
optional timestamp window (`HmacSha256Verifier`), the answer to a duplicate in flight
(`_handler.BUSY_RETRY_AFTER`) and how long handled keys are remembered (`_dedupe`).

Mount a receiver in an aiohttp service::

    app.router.add_post("/amili/webhooks", webhooks.webhook_handler(on_event, secret=SECRET))
"""

from ._dedupe import (
    DEFAULT_DEDUPE_KEYS,
    DEFAULT_DEDUPE_TTL,
    Claim,
    DedupeStore,
    MemoryDedupeStore,
)
from ._errors import WebhookError, WebhookSignatureError
from ._handler import EventCallback, webhook_handler
from ._parse import EVENT_HEADER, EVENT_MODELS, UnknownEvent, WebhookEvent, parse_event
from ._receiver import WebhookReceiver
from ._verify import (
    SIGNATURE_HEADER,
    HmacSha256Verifier,
    Verifier,
    compute_signature,
    verify_signature,
)

__all__ = [
    "DEFAULT_DEDUPE_KEYS",
    "DEFAULT_DEDUPE_TTL",
    "EVENT_HEADER",
    "EVENT_MODELS",
    "SIGNATURE_HEADER",
    "Claim",
    "DedupeStore",
    "EventCallback",
    "HmacSha256Verifier",
    "MemoryDedupeStore",
    "UnknownEvent",
    "Verifier",
    "WebhookError",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookSignatureError",
    "compute_signature",
    "parse_event",
    "verify_signature",
    "webhook_handler",
]
