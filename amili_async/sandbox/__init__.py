"""A faithful local Amili AutoCollect server (like stripe-mock or moto), in aiohttp.web.

Speaks the wire contract of ``docs/DESIGN.md`` over in-memory state: Identiverse-like
``/token``, every ``/collection/v1`` operation (asynchronous write batches, listings with
opaque page tokens, case actions), the legacy ``/webapi/api`` endpoints, ProblemDetails
errors, ``IdempotencyKey`` replays, ``X-Amili-Request-Id`` on every response, seeded fault
injection, signed webhook deliveries to registered URLs and deterministic Norwegian-looking
seed data (1,000,000 invoices in well under a second, materialised on demand).

Usage::

    async with SandboxServer(SandboxConfig(invoices=1000, batch_delay=0)) as server:
        server.base_url, server.token_url, server.client_id, server.client_secret
"""

from ._app import REQUEST_ID_HEADER, create_app
from ._config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORG_ID,
    DEFAULT_WEBHOOK_SECRET,
    RESTRICTED_CLIENT_ID,
    RESTRICTED_CLIENT_SECRET,
    SECOND_ORG_ID,
    ClientConfig,
    OrgConfig,
    SandboxConfig,
)
from ._events import BATCH_COMPLETED, CASE, CASE_UPDATED, SETTLEMENT_CREATED, Event, EventBus
from ._faults import FaultConfig
from ._seed import SeededInvoices, seed_invoices
from ._server import SandboxServer, serve_forever
from ._state import SandboxState
from ._webhooks import WEBHOOKS_PATH, WebhookDispatcher

__all__ = [
    "BATCH_COMPLETED",
    "CASE",
    "CASE_UPDATED",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ORG_ID",
    "DEFAULT_WEBHOOK_SECRET",
    "REQUEST_ID_HEADER",
    "RESTRICTED_CLIENT_ID",
    "RESTRICTED_CLIENT_SECRET",
    "SECOND_ORG_ID",
    "SETTLEMENT_CREATED",
    "WEBHOOKS_PATH",
    "ClientConfig",
    "Event",
    "EventBus",
    "FaultConfig",
    "OrgConfig",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "SeededInvoices",
    "WebhookDispatcher",
    "create_app",
    "seed_invoices",
    "serve_forever",
]
