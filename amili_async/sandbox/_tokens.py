"""Identiverse-like client-credentials tokens: HS256 JWTs signed with the sandbox secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from .. import _json
from ._config import ClientConfig
from ._wire import ApiError

__all__ = ["TokenClaims", "TokenIssuer"]

# Tokens are HS256 JWTs: shaped like the real ones, signed with the app's secret.
_HEADER = _json.dumps({"alg": "HS256", "typ": "JWT"})
# The scope and issuer a token names; the issuer's .invalid host can never resolve.
SCOPE = "write:collection.case"
ISSUER = "https://auth.sandbox.amili.invalid"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen
class TokenClaims:
    """What a verified access token says: the client, its organisations, its expiry."""

    client_id: str
    #: Organisation ids the token grants; None means all.
    orgs: frozenset[str] | None
    expires: int

    def may_access(self, org_id: str) -> bool:
        """Whether the token grants organisation ``org_id``."""
        return self.orgs is None or org_id in self.orgs


def _unauthorized(detail: str) -> ApiError:
    return ApiError(
        401,
        detail,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{detail}"'},
    )


class TokenIssuer:
    """Authenticates clients, issues their access tokens and verifies bearer tokens."""

    def __init__(
        self,
        secret: bytes,
        clients: tuple[ClientConfig, ...],
        lifetime: int,
        resource: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.clients = {c.client_id: c for c in clients}
        self.lifetime = lifetime
        self.resource = resource
        self._clock = clock

    def authenticate(self, client_id: str, client_secret: str) -> ClientConfig | None:
        """The client with these credentials (compared in constant time), or None."""
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(
            client.client_secret.encode(), client_secret.encode()
        ):
            return None
        return client

    def _sign(self, signing_input: bytes) -> bytes:
        return hmac.new(self._secret, signing_input, hashlib.sha256).digest()

    def issue(self, client: ClientConfig, lifetime: int | None = None) -> dict[str, Any]:
        """A TokenResponse for ``client``; ``lifetime`` overrides the configured one
        (a negative value mints an already expired token, for tests)."""
        life = self.lifetime if lifetime is None else lifetime
        now = int(self._clock())
        exp = now + life
        payload = {
            "iss": ISSUER,
            "sub": client.client_id,
            "aud": self.resource,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "scope": SCOPE,
            "orgs": ["*"] if client.org_ids is None else sorted(client.org_ids),
            "jti": str(uuid.uuid4()),
        }
        signing_input = f"{_b64(_HEADER)}.{_b64(_json.dumps(payload))}".encode()
        token = f"{signing_input.decode()}.{_b64(self._sign(signing_input))}"
        return {
            "access_token": token,
            "token_type": "Bearer",
            "not_before": now,
            "expires_in": life,
            "expires_on": exp,
            "resource": self.resource,
        }

    def verify_header(self, authorization: str | None) -> TokenClaims:
        """Check an ``Authorization`` header; raise a 401 ApiError when it is not valid."""
        if not authorization:
            raise _unauthorized("Missing bearer token.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("Authorization header is not a bearer token.")
        return self.verify(token.strip())

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid, unexpired token; 401 otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise _unauthorized("Malformed token.")
        try:
            signature = _unb64(parts[2])
            payload = _json.loads(_unb64(parts[1]))
            header = _json.loads(_unb64(parts[0]))
        except (ValueError, _json.DecodeError):
            raise _unauthorized("Malformed token.") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise _unauthorized("Unsupported token algorithm.")
        expected = self._sign(f"{parts[0]}.{parts[1]}".encode())
        if not hmac.compare_digest(signature, expected):
            raise _unauthorized("Invalid token signature.")
        if not isinstance(payload, dict):
            raise _unauthorized("Malformed token.")
        exp, nbf, sub, orgs = (payload.get(k) for k in ("exp", "nbf", "sub", "orgs"))
        if not isinstance(exp, int) or not isinstance(sub, str) or not isinstance(orgs, list):
            raise _unauthorized("Malformed token.")
        now = self._clock()
        if exp <= now:
            raise _unauthorized("The token has expired.")
        if isinstance(nbf, int) and nbf > now + 60:
            raise _unauthorized("The token is not valid yet.")
        granted = None if "*" in orgs else frozenset(str(o) for o in orgs)
        return TokenClaims(sub, granted, exp)
