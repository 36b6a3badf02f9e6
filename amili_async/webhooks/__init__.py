"""Webhook deliveries from Amili: verify, parse into typed events, de-duplicate, receive.

The docs show the four events (BATCH_COMPLETED, SETTLEMENT_CREATED, CASE, CASE_UPDATED), their
payloads and the delivery headers (`X-Amili-Event`, `IdempotencyKey`, `X-Amili-Request-Id`,
`X-Webhook-Signature`), but not the signature algorithm, the retry policy or the expected
answer. Inferred, each in one place: the signature scheme (`_verify.compute_signature`), the
optional timestamp window (`HmacSha256Verifier`), the answer to a duplicate in flight
(`_handler.BUSY_RETRY_AFTER`), how long handled keys are remembered and claims leased
(`_dedupe`), and what identifies a delivery (`_handler.delivery_key`).

De-duplication scheme (inferred): a delivery is identified by what the signature covers, never
by the unsigned `IdempotencyKey` header (a replay could carry any key): the payload's own `id`
(`event:<id>`), or, for a payload without one, the SHA-256 of the signed body
(`sha256:<hex>`). A claim is leased (`DEFAULT_LEASE`, 5 min) so a hung or crashed handler's
claim expires; a callback running past `callback_timeout` (60 s) is answered 500 and releases.

Mount a receiver in an aiohttp service (`GuardedSite` adds header timeouts and a connection
limit, which a plain `web.TCPSite` lacks)::

    app.router.add_post("/amili/webhooks", webhooks.webhook_handler(on_event, secret=SECRET))
    runner = webhooks.guarded_runner(app)
    await runner.setup()
    await webhooks.GuardedSite(runner, "0.0.0.0", 8080).start()
"""

from ._dedupe import (
    DEFAULT_DEDUPE_KEYS,
    DEFAULT_DEDUPE_TTL,
    DEFAULT_LEASE,
    Claim,
    DedupeStore,
    MemoryDedupeStore,
)
from ._errors import WebhookError, WebhookSignatureError
from ._handler import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CALLBACK_TIMEOUT,
    MAX_BODY_SIZE,
    EventCallback,
    delivery_key,
    webhook_handler,
)
from ._parse import EVENT_HEADER, EVENT_MODELS, UnknownEvent, WebhookEvent, parse_event
from ._postgres import PostgresDedupeStore
from ._receiver import WebhookReceiver
from ._site import (
    DEFAULT_HEADER_TIMEOUT,
    MAX_CONNECTIONS,
    ConnectionStats,
    GuardedSite,
    guarded_runner,
)
from ._sqlite import SqliteDedupeStore
from ._verify import (
    SIGNATURE_HEADER,
    HmacSha256Verifier,
    Verifier,
    compute_signature,
    verify_signature,
)

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_CALLBACK_TIMEOUT",
    "DEFAULT_DEDUPE_KEYS",
    "DEFAULT_DEDUPE_TTL",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_LEASE",
    "EVENT_HEADER",
    "EVENT_MODELS",
    "MAX_BODY_SIZE",
    "MAX_CONNECTIONS",
    "SIGNATURE_HEADER",
    "Claim",
    "ConnectionStats",
    "DedupeStore",
    "EventCallback",
    "GuardedSite",
    "HmacSha256Verifier",
    "MemoryDedupeStore",
    "PostgresDedupeStore",
    "SqliteDedupeStore",
    "UnknownEvent",
    "Verifier",
    "WebhookError",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookSignatureError",
    "compute_signature",
    "delivery_key",
    "guarded_runner",
    "parse_event",
    "verify_signature",
    "webhook_handler",
]
