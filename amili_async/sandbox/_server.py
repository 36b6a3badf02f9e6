"""SandboxServer: the app on a free loopback port, as an async context manager."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .._serving import LocalServer
from ._app import STATE_KEY, TOKENS_KEY, create_app
from ._config import RESTRICTED_CLIENT_ID, RESTRICTED_CLIENT_SECRET, SandboxConfig
from ._events import EventBus
from ._faults import FAULTS_KEY, FaultConfig, FaultInjector
from ._requestlog import describe_faults
from ._state import SandboxState
from ._throttle import THROTTLE_KEY, Throttle
from ._webhooks import WEBHOOKS_KEY, WebhookDispatcher

__all__ = ["SandboxServer", "serve_forever"]


class SandboxServer(LocalServer):
    """Run a sandbox on loopback::

    async with SandboxServer(SandboxConfig(invoices=1000)) as server:
        ...  # server.base_url, server.token_url, server.client_id, server.client_secret
    """

    def __init__(self, config: SandboxConfig | None = None, *, access_log: bool = False) -> None:
        self.config = config or SandboxConfig()
        super().__init__(
            create_app(self.config), self.config.host, self.config.port, access_log=access_log
        )

    # ------------------------------------------------------------------ addresses
    @property
    def origin(self) -> str:
        """``http://host:port``."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The ``/collection/v1`` base URL to give a client."""
        return f"{self.origin}/collection/v1"

    @property
    def token_url(self) -> str:
        """The token endpoint to give a client."""
        return f"{self.origin}/token"

    # ------------------------------------------------------------------ credentials & data
    @property
    def client_id(self) -> str:
        """The default client's id."""
        return self.config.default_client.client_id

    @property
    def client_secret(self) -> str:
        """The default client's secret."""
        return self.config.default_client.client_secret

    restricted_client_id = RESTRICTED_CLIENT_ID
    restricted_client_secret = RESTRICTED_CLIENT_SECRET

    @property
    def default_org_id(self) -> str:
        """The seeded organisation's id."""
        return self.config.default_org_id

    @property
    def state(self) -> SandboxState:
        """The in-memory data, for tests to inspect."""
        return self.app[STATE_KEY]

    @property
    def events(self) -> EventBus:
        """The event bus (batch completions, settlements, case events)."""
        return self.state.events

    @property
    def webhooks(self) -> WebhookDispatcher:
        """Webhook delivery: ``register(url)``, ``duplicates``, the delivery ``log``."""
        return self.app[WEBHOOKS_KEY]

    @property
    def webhook_secret(self) -> str:
        """The secret webhook deliveries are signed with."""
        return self.config.webhook_secret

    def hold_batches(self) -> None:
        """Keep every write batch QUEUED until :meth:`release_batches`: a deterministic knob
        for tests (no ``batch_delay`` to race against)."""
        self.state.batches.hold()

    def release_batches(self) -> None:
        """Let held write batches be processed (each no earlier than its ``batch_delay``)."""
        self.state.batches.release()

    def issue_token(self, client_id: str | None = None, lifetime: int | None = None) -> str:
        """Mint an access token directly (a negative ``lifetime`` gives an expired one)."""
        issuer = self.app[TOKENS_KEY]
        client = issuer.clients[client_id or self.client_id]
        return str(issuer.issue(client, lifetime)["access_token"])

    def set_rate_limit(
        self, rate: float | None, *, clock: Callable[[], float] | None = None
    ) -> Throttle | None:
        """Swap the per-client rate limit at runtime (None: unlimited); returns the throttle,
        whose ``allowed`` and ``refused`` counters a test or benchmark can read. ``clock``
        (sandbox behaviour, for tests): the bucket's time source instead of the monotonic
        clock, so a test decides when tokens come back."""
        throttle = (Throttle(rate) if clock is None else Throttle(rate, clock)) if rate else None
        self.app[THROTTLE_KEY][0] = throttle
        return throttle

    @property
    def throttle(self) -> Throttle | None:
        """The per-client rate limiter in force, None when unlimited."""
        throttle: Throttle | None = self.app[THROTTLE_KEY][0]
        return throttle

    def set_faults(self, faults: FaultConfig | str | None) -> None:
        """Swap fault injection at runtime (a spec string is parsed; None turns it off)."""
        if isinstance(faults, str):
            faults = FaultConfig.parse(faults)
        self.app[FAULTS_KEY][0] = FaultInjector(faults) if faults else None


async def serve_forever(
    config: SandboxConfig | None = None,
    *,
    ready: Callable[[SandboxServer], None] | None = None,
) -> None:
    """Serve until cancelled (Ctrl-C in ``asyncio.run``); ``ready`` gets the running server."""
    async with SandboxServer(config, access_log=True) as server:
        if ready is not None:
            ready(server)
        else:
            print(
                f"Amili sandbox: API {server.base_url}  token {server.token_url}  "
                f"client {server.client_id} / {server.client_secret}  "
                f"org {server.default_org_id}\n"
                f"  {describe_faults(server.config.faults, server.config.rate_limit)}"
                f"{'; logging requests' if server.config.log_requests else ''}",
                flush=True,
            )
        await asyncio.Event().wait()
