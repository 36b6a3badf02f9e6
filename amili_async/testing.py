"""pytest plugin: the embedded Amili sandbox and a client connected to it.

Installed with the package (entry point `pytest11`); `pip install "amili-async[pytest]"` brings
pytest-asyncio, which runs the async fixtures. A user's own test suite can then write (strict
mode, pytest-asyncio's default, needs the marker; `asyncio_mode = "auto"` does not):

    import pytest

    @pytest.mark.asyncio
    async def test_my_export(amili_client, amili_sandbox):
        async for invoice in amili_client.invoices.list(amili_sandbox.default_org_id):
            ...

Each test gets a fresh sandbox on a free loopback port (fast: the default seed is small); use
`amili_sandbox_config` to change its settings. Without pytest-asyncio the fixtures fail with a
message saying what to install, and nothing else in the suite is affected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._client import AmiliClient
    from .sandbox import SandboxConfig, SandboxServer
    from .webhooks import WebhookReceiver

try:
    import pytest_asyncio

    HAVE_PYTEST_ASYNCIO = True
except ImportError:  # without it the async fixtures cannot run: they say so (see below)
    HAVE_PYTEST_ASYNCIO = False

MISSING_PYTEST_ASYNCIO = (
    "amili_sandbox, amili_client and amili_webhook_receiver are async fixtures and need "
    "pytest-asyncio: "
    'pip install "amili-async[pytest]" (or pytest-asyncio), then mark async tests with '
    '@pytest.mark.asyncio or set asyncio_mode = "auto"'
)


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    """Override in a conftest to seed more invoices, inject faults, and so on."""
    from .sandbox import SandboxConfig

    return SandboxConfig()


if not HAVE_PYTEST_ASYNCIO:

    @pytest.fixture(name="amili_sandbox")
    def _missing_sandbox(amili_sandbox_config: SandboxConfig) -> None:
        """Stands in for the async fixture: fails the test with what to install."""
        pytest.fail(MISSING_PYTEST_ASYNCIO, pytrace=False)

    @pytest.fixture(name="amili_client")
    def _missing_client(amili_sandbox: None) -> None:
        """Stands in for the async fixture: fails the test with what to install."""
        pytest.fail(MISSING_PYTEST_ASYNCIO, pytrace=False)

    @pytest.fixture(name="amili_webhook_receiver")
    def _missing_receiver() -> None:
        """Stands in for the async fixture: fails the test with what to install."""
        pytest.fail(MISSING_PYTEST_ASYNCIO, pytrace=False)

else:

    @pytest_asyncio.fixture
    async def amili_sandbox(amili_sandbox_config: SandboxConfig) -> AsyncIterator[SandboxServer]:
        """A running sandbox server on 127.0.0.1 with seeded data."""
        from .sandbox import SandboxServer

        async with SandboxServer(amili_sandbox_config) as server:
            yield server

    @pytest_asyncio.fixture
    async def amili_client(amili_sandbox: SandboxServer) -> AsyncIterator[AmiliClient]:
        """An AmiliClient authenticated against `amili_sandbox`."""
        from ._client import AmiliClient

        async with AmiliClient(
            client_id=amili_sandbox.client_id,
            client_secret=amili_sandbox.client_secret,
            base_url=amili_sandbox.base_url,
            token_url=amili_sandbox.token_url,
        ) as client:
            yield client

    @pytest_asyncio.fixture
    async def amili_webhook_receiver(
        amili_sandbox_config: SandboxConfig,
    ) -> AsyncIterator[WebhookReceiver]:
        """A `webhook_handler` on a free loopback port, verifying with the sandbox's secret.

        Register `.url` (`amili_sandbox.webhooks.register(receiver.url)`), then read
        `.events` or `await receiver.wait_for(n, match=..., timeout=...)`.
        """
        from .webhooks import WebhookReceiver

        async with WebhookReceiver(secret=amili_sandbox_config.webhook_secret) as receiver:
            yield receiver


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "amili_sandbox: test runs against the embedded sandbox")
