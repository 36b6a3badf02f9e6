"""How a process that runs units builds its own client: picklable, secrets kept out of reprs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from .._client import AmiliClient

__all__ = ["ClientSettings"]


@attrs.frozen
class ClientSettings:
    """The keyword arguments of `AmiliClient`, to build one client in each worker process.

    Leave the credentials out (`ClientSettings(environment="production")`) and every worker
    reads them from its own AMILI_* environment variables, so no secret travels with the
    tasks. Anything given here (hooks included) must be picklable to reach a Dask worker.
    """

    base_url: str | None = None
    token_url: str | None = None
    environment: str | None = None
    client_id: str | None = None
    client_secret: str | None = attrs.field(default=None, repr=False)
    token: str | None = attrs.field(default=None, repr=False)
    options: Mapping[str, Any] = attrs.field(factory=dict, repr=lambda o: repr(sorted(o)))
    """Further `AmiliClient` keyword arguments (timeout, retry_for, rate_limit, hooks...)."""

    def from_environment(self) -> ClientSettings:
        """These settings with what is left out read from AMILI_* variables here, now.

        For workers that do not share this process's environment (a remote cluster): the
        values then travel with the tasks, secret included, so use a TLS-secured cluster.
        """
        env = os.environ
        return attrs.evolve(
            self,
            base_url=self.base_url or env.get("AMILI_BASE_URL") or None,
            token_url=self.token_url or env.get("AMILI_TOKEN_URL") or None,
            environment=self.environment or env.get("AMILI_ENVIRONMENT") or None,
            client_id=self.client_id or env.get("AMILI_CLIENT_ID") or None,
            client_secret=self.client_secret or env.get("AMILI_CLIENT_SECRET") or None,
        )

    def connect(self) -> AmiliClient:
        """A new client with these settings (call it inside the event loop that will use it)."""
        given: dict[str, Any] = {
            name: value
            for name, value in (
                ("base_url", self.base_url),
                ("token_url", self.token_url),
                ("environment", self.environment),
                ("client_id", self.client_id),
                ("client_secret", self.client_secret),
                ("token", self.token),
            )
            if value is not None
        }
        return AmiliClient(**given, **self.options)
