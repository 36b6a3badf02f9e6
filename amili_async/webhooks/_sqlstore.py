"""The shared half of the database-backed `DedupeStore`s: one table, claims by upsert, leases.

One row per delivery key: `done` (handled) or in flight under `owner` until `expires_at`. A
claim is `INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE expires_at <= now RETURNING owner`:
it wins on a new key and on an expired row (an abandoned claim, or a handled key past its
`ttl`) and returns nothing otherwise, atomically in any database with upserts (PostgreSQL,
SQLite >= 3.35). Times are wall-clock seconds (`time.time`): the rows outlive the process and
are shared by replicas, whose clocks NTP keeps well inside a lease. The statements are written
once, with PostgreSQL's `$n` placeholders; `SqliteDedupeStore` reads them as `?n`.
"""

from __future__ import annotations

import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import attrs

from ._dedupe import DEFAULT_DEDUPE_TTL, DEFAULT_LEASE, Claim, check_bounds

__all__ = ["DEFAULT_TABLE", "PURGE_INTERVAL", "SqlDedupeStore", "Statements"]

DEFAULT_TABLE = "amili_webhook_deliveries"
"""The table's name unless told otherwise (a prefix no application table is likely to use)."""

PURGE_INTERVAL = 60.0
"""Seconds between two deletions of expired rows by one store: often enough to keep the table
at about a `ttl` of traffic, rarely enough to cost nothing per delivery."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@attrs.frozen
class Statements:
    """The SQL of one table, in PostgreSQL's placeholder style."""

    create: tuple[str, ...]
    claim: str
    state: str
    complete: str
    release: str
    purge: str

    @classmethod
    def for_table(cls, table: str) -> Statements:
        """The statements of `table` (ValueError unless it is a plain SQL identifier)."""
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table must be a plain SQL identifier, not {table!r}")
        return cls(
            create=(
                f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY,"
                " done BOOLEAN NOT NULL, owner TEXT, expires_at DOUBLE PRECISION NOT NULL)",
                f"CREATE INDEX IF NOT EXISTS {table}_expires ON {table} (expires_at)",
            ),
            # $1 key, $2 owner, $3 now, $4 lease expiry
            claim=f"INSERT INTO {table} (key, done, owner, expires_at) VALUES ($1, FALSE, $2, $4)"
            " ON CONFLICT (key) DO UPDATE SET done = FALSE, owner = excluded.owner,"
            f" expires_at = excluded.expires_at WHERE {table}.expires_at <= $3 RETURNING owner",
            state=f"SELECT done FROM {table} WHERE key = $1",
            # $1 key, $2 expiry of the memory of it
            complete=f"INSERT INTO {table} (key, done, owner, expires_at)"
            " VALUES ($1, TRUE, NULL, $2) ON CONFLICT (key)"
            " DO UPDATE SET done = TRUE, owner = NULL, expires_at = excluded.expires_at",
            release=f"DELETE FROM {table} WHERE key = $1 AND owner = $2 AND NOT done",
            purge=f"DELETE FROM {table} WHERE expires_at <= $1",
        )


class SqlDedupeStore(ABC):
    """`DedupeStore` over `Statements`; a subclass only runs a statement in its database.

    Each claim gets a fresh owner token, so a release by a handler whose lease was taken over
    cannot free the new holder's claim.
    """

    def __init__(
        self,
        *,
        table: str = DEFAULT_TABLE,
        ttl: float = DEFAULT_DEDUPE_TTL,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_bounds(ttl=ttl, lease=lease)
        self.table = table
        self.ttl = ttl
        self.lease = lease
        self._sql = Statements.for_table(table)
        self._clock = clock
        self._owners: dict[str, str] = {}  # key -> owner token of this store's live claims
        self._next_purge = 0.0

    @abstractmethod
    async def _fetch(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run one statement (autocommitted) and return its rows."""

    @abstractmethod
    async def open(self) -> Self:
        """Connect and create the table if needed (idempotent; the first statement does it
        too, so calling it only moves a bad location's error to start-up)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection(s)."""

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def claim(self, key: str) -> Claim:
        """See `DedupeStore.claim`: one upsert, then a look at the row when it did not win."""
        now = self._clock()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            await self._fetch(self._sql.purge, now)
        owner = uuid.uuid4().hex
        if await self._fetch(self._sql.claim, key, owner, now, now + self.lease):
            self._owners[key] = owner
            return "claimed"
        rows = await self._fetch(self._sql.state, key)
        # No row: released between the two statements; the sender's retry will find it free.
        return "done" if rows and rows[0][0] else "busy"

    async def complete(self, key: str) -> None:
        """See `DedupeStore.complete`."""
        self._owners.pop(key, None)
        await self._fetch(self._sql.complete, key, self._clock() + self.ttl)

    async def release(self, key: str) -> None:
        """See `DedupeStore.release`: only this store's own, still unexpired claim."""
        owner = self._owners.pop(key, None)
        if owner is not None:
            await self._fetch(self._sql.release, key, owner)
