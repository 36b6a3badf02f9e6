"""``IdempotencyKey`` replays, one mechanism for every POST (DESIGN.md, Stripe's rule): a
client retrying a request whose answer was lost gets that answer, not a second effect."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from ._wire import ApiError, dumps

__all__ = ["Idempotency"]

_T = TypeVar("_T")


class Idempotency:
    """The remembered results of POSTs made with an ``IdempotencyKey`` (failures are not
    remembered, so a failed attempt can be retried under its key)."""

    def __init__(self) -> None:
        #: (scope, operation, IdempotencyKey) -> (request fingerprint, result) of every POST.
        self.results: dict[tuple[str, str, str], tuple[str, Any]] = {}

    def run(
        self, scope: str, operation: str, key: str | None, request: Any, run: Callable[[], _T]
    ) -> _T:
        """Run ``run`` at most once per (scope, operation, key): a repeat of ``request`` gets
        the first result, another request under the same key a 409; no key, no memory."""
        if key is None:
            return run()
        fingerprint = _fingerprint(request)
        slot = (scope, operation, key)
        seen = self.results.get(slot)
        if seen is not None:
            if seen[0] != fingerprint:
                raise ApiError(
                    409,
                    "This IdempotencyKey was already used with a different request body.",
                    title="Idempotency key reuse",
                )
            result: _T = seen[1]
            return result
        result = run()
        self.results[slot] = (fingerprint, result)
        return result


def _fingerprint(request: Any) -> str:
    return hashlib.sha256(dumps(request)).hexdigest()
