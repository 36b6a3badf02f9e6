"""Which deliveries were already handled: the async `DedupeStore` protocol and its bounded,
in-memory TTL default.

A delivery moves through three states per `IdempotencyKey`: unseen -> in flight (claimed by
one handler while its callback runs) -> done (remembered for `ttl` seconds). A failed callback
releases the claim, so Amili's redelivery is processed; a concurrent duplicate sees "busy".
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

__all__ = ["DEFAULT_DEDUPE_KEYS", "DEFAULT_DEDUPE_TTL", "Claim", "DedupeStore", "MemoryDedupeStore"]

Claim = Literal["claimed", "done", "busy"]
"""`claimed`: the caller now handles the delivery; `done`: handled before; `busy`: another
handler is on it right now."""

DEFAULT_DEDUPE_KEYS = 100_000
"""Handled keys remembered in memory: days of traffic for a typical creditor at ~100 bytes a
key (about 10 MB at most); past it the oldest are forgotten first."""

DEFAULT_DEDUPE_TTL = 24 * 3600.0
"""Seconds a handled key is remembered. Amili's redelivery window is not documented; a day
covers any plausible retry schedule (inferred) while bounding memory by time as well."""


@runtime_checkable
class DedupeStore(Protocol):
    """Where handled delivery keys live. Async, so a service with several replicas can back it
    with its own database (claim = an insert that fails on a duplicate key)."""

    async def claim(self, key: str) -> Claim:
        """Atomically: `claimed` if `key` is neither done nor in flight (it is now in flight)."""
        ...

    async def complete(self, key: str) -> None:
        """The callback succeeded: remember `key` as done."""
        ...

    async def release(self, key: str) -> None:
        """The callback failed: forget the claim so a redelivery is processed."""
        ...


class MemoryDedupeStore:
    """The default store: in-process, bounded by count (`max_keys`) and by age (`ttl`).

    Claims in flight are never evicted (there are at most as many as concurrent requests).
    """

    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_DEDUPE_KEYS,
        ttl: float = DEFAULT_DEDUPE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        if ttl <= 0:
            raise ValueError("ttl must be > 0")
        self.max_keys = max_keys
        self.ttl = ttl
        self._clock = clock
        self._done: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first
        self._in_flight: set[str] = set()

    def __len__(self) -> int:
        """Keys remembered as done (after expiring old ones)."""
        self._expire()
        return len(self._done)

    def _expire(self) -> None:
        now = self._clock()
        while self._done:
            key, expiry = next(iter(self._done.items()))
            if expiry > now:
                break
            del self._done[key]

    async def claim(self, key: str) -> Claim:
        """See `DedupeStore.claim`; no await inside, so it is atomic on the event loop."""
        self._expire()
        if key in self._done:
            return "done"
        if key in self._in_flight:
            return "busy"
        self._in_flight.add(key)
        return "claimed"

    async def complete(self, key: str) -> None:
        """See `DedupeStore.complete`."""
        self._in_flight.discard(key)
        self._done.pop(key, None)
        self._done[key] = self._clock() + self.ttl
        while len(self._done) > self.max_keys:
            self._done.popitem(last=False)

    async def release(self, key: str) -> None:
        """See `DedupeStore.release`."""
        self._in_flight.discard(key)
