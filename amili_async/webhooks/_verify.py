"""Who sent this delivery: the `Verifier` protocol and the default, inferred HMAC scheme.

The webhooks guide names `X-Webhook-Signature` but its "Verifying Signatures" section is not
public. Inferred (the common scheme of Stripe, GitHub, Svix): HMAC-SHA256 of the raw body with
the shared secret, lower-case hex, optionally prefixed `sha256=`. With a timestamp header
configured (also inferred, off by default), the signed message is `<timestamp>.<body>` and a
delivery older or newer than the tolerance is refused, so a captured delivery cannot be
replayed later. A different published scheme is a change to `compute_signature` alone.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from ._errors import WebhookSignatureError

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "HmacSha256Verifier",
    "Verifier",
    "compute_signature",
    "header",
    "verify_signature",
]

# The delivery header of the signature, as the webhooks guide names it.
SIGNATURE_HEADER = "X-Webhook-Signature"

DEFAULT_TOLERANCE = 300.0
"""Seconds a timestamped delivery stays acceptable either side of now: five minutes absorbs
clock skew and a slow retry while keeping a captured delivery useless soon after (Stripe's
default for the same check)."""

_PREFIX = "sha256="
# A SHA-256 digest in hex: anything else is malformed before any comparison is made.
_HEX_DIGITS = frozenset("0123456789abcdef")
_DIGEST_LENGTH = 64


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name` in any mapping (case-insensitive; aiohttp's is already)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the webhook secret must not be empty")
    return key


def compute_signature(body: bytes, secret: str | bytes, timestamp: str | None = None) -> str:
    """The expected `X-Webhook-Signature` of a body (inferred scheme: HMAC-SHA256, hex).

    With `timestamp`, the signed message is `<timestamp>.<body>` (inferred replay protection).
    """
    message = body if timestamp is None else timestamp.encode("ascii") + b"." + body
    return hmac.digest(_key(secret), message, hashlib.sha256).hex()  # one C call


def verify_signature(
    body: bytes, signature: str | None, secret: str | bytes, timestamp: str | None = None
) -> None:
    """Raise WebhookSignatureError unless `signature` matches (constant-time comparison).

    A missing, empty, non-ASCII or non-hex signature is refused as malformed, never a TypeError.
    """
    expected = compute_signature(body, secret, timestamp)
    if not signature or not signature.strip():
        raise WebhookSignatureError(f"missing {SIGNATURE_HEADER} header")
    given = signature.strip().removeprefix(_PREFIX).lower()
    # A match is a well-formed digest: the form is checked only to name a failure (ASCII
    # first, as compare_digest refuses other text).
    if given.isascii() and hmac.compare_digest(given, expected):
        return
    if len(given) != _DIGEST_LENGTH or not _HEX_DIGITS.issuperset(given):
        raise WebhookSignatureError(f"malformed {SIGNATURE_HEADER} header")
    raise WebhookSignatureError("webhook signature does not match")


@runtime_checkable
class Verifier(Protocol):
    """Decides whether a delivery is authentic; raises `WebhookError` when it is not.

    Implement it for a scheme Amili publishes later or for key rotation (try several secrets).
    """

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise `WebhookError` (401 in `webhook_handler`) unless the delivery is authentic."""
        ...


class HmacSha256Verifier:
    """The default verifier: the inferred HMAC-SHA256 scheme, optional timestamp window."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        timestamp_header: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = _key(secret)
        self.timestamp_header = timestamp_header
        self.tolerance = tolerance
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"HmacSha256Verifier(timestamp_header={self.timestamp_header!r})"

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Check the signature (and the timestamp window, when a timestamp header is set)."""
        timestamp = None
        if self.timestamp_header is not None:
            timestamp = self._check_timestamp(header(headers, self.timestamp_header))
        verify_signature(body, header(headers, SIGNATURE_HEADER), self._secret, timestamp)

    def _check_timestamp(self, value: str | None) -> str:
        if value is None or not value.strip():
            raise WebhookSignatureError(f"missing {self.timestamp_header} header")
        value = value.strip()
        if not value.isascii() or not value.isdigit():
            raise WebhookSignatureError(f"malformed {self.timestamp_header} header")
        if abs(self._clock() - int(value)) > self.tolerance:
            raise WebhookSignatureError(
                f"{self.timestamp_header} is outside the {self.tolerance:g} s tolerance"
            )
        return value
