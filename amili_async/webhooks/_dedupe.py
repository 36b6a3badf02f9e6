"""Which deliveries were already handled: the async `DedupeStore` protocol and its bounded,
in-memory TTL default.

A delivery moves through three states per key (`_handler.delivery_key`: what the signature
covers, never an unsigned header): unseen -> in flight (claimed by one handler while its
callback runs, for at most `lease` seconds) -> done (remembered for `ttl` seconds). A failed or
timed-out callback releases the claim, so Amili's redelivery is processed; a concurrent
duplicate sees "busy"; a claim whose holder hung or died is taken over once its lease expired.
The shared stores (`SqliteDedupeStore`, `PostgresDedupeStore`) keep the same states in a table.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_DEDUPE_KEYS",
    "DEFAULT_DEDUPE_TTL",
    "DEFAULT_LEASE",
    "Claim",
    "DedupeStore",
    "MemoryDedupeStore",
    "check_bounds",
]

Claim = Literal["claimed", "done", "busy"]
"""`claimed`: the caller now handles the delivery; `done`: handled before; `busy`: another
handler is on it right now (and its lease has not expired)."""

DEFAULT_DEDUPE_KEYS = 100_000
"""Handled keys remembered in memory: days of traffic for a typical creditor at ~100 bytes a
key (about 10 MB at most); past it the oldest are forgotten first."""

DEFAULT_DEDUPE_TTL = 24 * 3600.0
"""Seconds a handled key is remembered. Amili's redelivery window is not documented; a day
covers any plausible retry schedule (inferred) while bounding memory by time as well."""

DEFAULT_LEASE = 300.0
"""Seconds a claim stays "busy" before another handler may take it over. It must outlast the
callback timeout (`_handler.DEFAULT_CALLBACK_TIMEOUT`, 60 s) so a slow but live callback is
never run twice; past it, a claim can only belong to a hung or crashed replica, and five
minutes is well inside any redelivery schedule (Stripe's and GitHub's retry for hours)."""


def check_bounds(*, ttl: float, lease: float) -> None:
    """ValueError for a `ttl` or `lease` that cannot work (shared by every store)."""
    if ttl <= 0:
        raise ValueError("ttl must be > 0")
    if lease <= 0:
        raise ValueError("lease must be > 0")


@runtime_checkable
class DedupeStore(Protocol):
    """Where handled delivery keys live. Async, so a service with several replicas can back it
    with its own database (claim = an insert that fails on a duplicate key, unless the
    existing claim's lease has expired)."""

    async def claim(self, key: str) -> Claim:
        """Atomically: `claimed` if `key` is neither done nor in flight under a live lease (it
        is now in flight, leased to the caller)."""
        ...

    async def complete(self, key: str) -> None:
        """The callback succeeded: remember `key` as done."""
        ...

    async def release(self, key: str) -> None:
        """The callback failed: forget the claim so a redelivery is processed."""
        ...


class MemoryDedupeStore:
    """The default store: in-process, bounded by count (`max_keys`) and by age (`ttl`).

    Claims in flight are never evicted by count (there are at most as many as concurrent
    requests); a claim older than `lease` seconds counts as abandoned.
    """

    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_DEDUPE_KEYS,
        ttl: float = DEFAULT_DEDUPE_TTL,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        check_bounds(ttl=ttl, lease=lease)
        self.max_keys = max_keys
        self.ttl = ttl
        self.lease = lease
        self._clock = clock
        self._done: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first
        self._in_flight: dict[str, float] = {}  # key -> lease expiry

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
        now = self._clock()
        if self._in_flight.get(key, now) > now:
            return "busy"
        self._in_flight[key] = now + self.lease
        return "claimed"

    async def complete(self, key: str) -> None:
        """See `DedupeStore.complete`."""
        self._in_flight.pop(key, None)
        self._done.pop(key, None)
        self._done[key] = self._clock() + self.ttl
        while len(self._done) > self.max_keys:
            self._done.popitem(last=False)

    async def release(self, key: str) -> None:
        """See `DedupeStore.release`."""
        self._in_flight.pop(key, None)
