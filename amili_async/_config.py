"""Hosts, defaults and header names, each with the reason for its value, in one place."""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

import attrs


@attrs.frozen
class Environment:
    """Where the API and its token endpoint live."""

    api_base_url: str
    token_url: str


ENVIRONMENTS: Final[dict[str, Environment]] = {
    # Documented by Amili.
    "staging": Environment(
        api_base_url="https://api.staging.amili.no/collection/v1",
        token_url="https://auth.staging.amili.no/token",
    ),
    # Inferred: the docs' batchUrl example points at https://api.amili.no/co…, and the token
    # host mirrors staging's auth.staging.amili.no without the "staging." label.
    "production": Environment(
        api_base_url="https://api.amili.no/collection/v1",
        token_url="https://auth.amili.no/token",
    ),
}

# Whole-request budget: bulk POSTs of 1,000 invoices are answered within seconds, a minute
# leaves room for a slow page without letting a hung server stall a caller forever.
DEFAULT_TIMEOUT: Final = 60.0
# Establishing TCP+TLS takes well under a second; 10 s covers a congested link and still
# fails fast enough to retry against a fresh connection.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
# Largest response body read: a 1,000-invoice page is ~1.3 MB and a legacy batch of a large
# creditor some MB more; 64 MiB is far above any documented answer, and bounds what a broken or
# hostile server can make a client buffer (an endless chunked body stops here).
DEFAULT_MAX_RESPONSE_SIZE: Final = 64 * 1024 * 1024
# Two retries ride out a rolling deploy or a single dropped connection; more only delays the
# error a caller must handle anyway.
DEFAULT_MAX_RETRIES: Final = 2
# aiohttp's own default; enough parallelism for bulk export without exhausting the server's
# or the host's sockets.
DEFAULT_MAX_CONNECTIONS: Final = 100
# First retry waits up to 0.5 s: long enough for a restarted instance to take traffic.
BACKOFF_BASE: Final = 0.5
# Doubling stops at 8 s so a high retry count never waits minutes between tries.
BACKOFF_CAP: Final = 8.0
# Honour a server's Retry-After up to a minute (the default whole-request timeout); asked for
# longer, we give the error back rather than silently blocking the caller.
MAX_RETRY_AFTER: Final = 60.0
# Refresh a token a minute before it expires so a request never leaves with a token that
# dies in flight or to clock skew between us and the token server.
TOKEN_REFRESH_MARGIN: Final = 60.0
# A token's lifetime as the SDK reads it (expires_in, or expires_on minus now) is clamped to
# [1 s, 24 h]. At least a second: a server claiming 0, a negative lifetime or an expiry in
# the past (clock skew) still has its token used, refreshed at half-life, so it costs at most
# two token requests a second instead of one before every call; no real endpoint issues
# shorter tokens on purpose (the sandbox's shortest, in tests, live 1 s). At most a day: Azure
# AD-style endpoints (Identiverse is one) issue 1 h tokens and allow at most 1 day, so a longer
# claim (1e400, "inf") is nonsense, and the token is refreshed at least daily.
MIN_TOKEN_LIFETIME: Final = 1.0
MAX_TOKEN_LIFETIME: Final = 24 * 60 * 60.0

# Header carrying the idempotency key: on every POST of the SDK (inferred, see docs/DESIGN.md),
# on every webhook delivery (documented), and read by the sandbox.
IDEMPOTENCY_KEY_HEADER: Final = "IdempotencyKey"
# Response header carrying the server's request id (documented for webhook deliveries).
REQUEST_ID_HEADER: Final = "X-Amili-Request-Id"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def resolve_environment(
    environment: str = "production",
    base_url: str | None = None,
    token_url: str | None = None,
    *,
    allow_insecure_http: bool = False,
) -> Environment:
    """Pick the hosts to talk to: a named environment, optionally overridden URL by URL.

    A custom ``base_url`` (a proxy, the embedded sandbox) without a ``token_url`` gets
    ``<origin of base_url>/token``, the sandbox layout, so credentials never travel to a
    host the caller did not name. Plain ``http://`` is refused except to a loopback host (the
    sandbox) or with ``allow_insecure_http``: the client secret and tokens would travel in clear.
    """
    try:
        named = ENVIRONMENTS[environment]
    except KeyError:
        known = ", ".join(sorted(ENVIRONMENTS))
        raise ValueError(f"unknown environment {environment!r} (known: {known})") from None
    if base_url is None:
        api_base_url = named.api_base_url
        default_token_url = named.token_url
    else:
        api_base_url = _validated_url("base_url", base_url, allow_insecure_http).rstrip("/")
        default_token_url = origin_of(api_base_url) + "/token"
    resolved_token_url = (
        default_token_url
        if token_url is None
        else _validated_url("token_url", token_url, allow_insecure_http)
    )
    return Environment(api_base_url=api_base_url, token_url=resolved_token_url)


def _validated_url(name: str, url: str, allow_insecure_http: bool) -> str:
    """Reject anything but an absolute https URL (http: loopback only) without query or fragment."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute http(s) URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{name} must not carry a query or fragment")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise ValueError(
            f"{name} uses the scheme 'http' to a host that is not loopback: credentials and "
            "debtor data would travel unencrypted. Use https, or pass allow_insecure_http=True "
            "(e.g. behind a TLS-terminating proxy on the same host)"
        )
    return url


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
