"""`PostgresDedupeStore`: handled deliveries in one PostgreSQL table, shared by every replica of
a receiver (the `[postgres]` extra: asyncpg, imported only when this store is opened).

The pool is opened on first use (or `async with`); the table and its index are created then,
under an advisory lock so replicas starting together do not race on `CREATE TABLE`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Self

from ._dedupe import DEFAULT_DEDUPE_TTL, DEFAULT_LEASE
from ._sqlstore import DEFAULT_TABLE, SqlDedupeStore

__all__ = ["POOL_SIZE", "PostgresDedupeStore"]

POOL_SIZE = 10
"""Connections per replica at most: one statement per claim or completion takes well under a
millisecond, so ten serve hundreds of concurrent deliveries while a few replicas stay far below
PostgreSQL's default `max_connections` (100)."""


class PostgresDedupeStore(SqlDedupeStore):
    """`DedupeStore` in PostgreSQL at `dsn` (`postgresql://user@host:port/db`)."""

    def __init__(
        self,
        dsn: str,
        *,
        table: str = DEFAULT_TABLE,
        ttl: float = DEFAULT_DEDUPE_TTL,
        lease: float = DEFAULT_LEASE,
        pool_size: int = POOL_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(table=table, ttl=ttl, lease=lease, clock=clock)
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: Any = None
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:  # never the DSN: it may carry a password
        return f"PostgresDedupeStore(table={self.table!r})"

    async def open(self) -> Self:
        """Connect and create the table if needed (idempotent)."""
        async with self._opening:
            if self._pool is None:
                try:
                    import asyncpg  # type: ignore[import-untyped]
                except ImportError:
                    raise ImportError(
                        'PostgresDedupeStore needs asyncpg: pip install "amili-async[postgres]"'
                    ) from None
                pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size)
                async with pool.acquire() as connection, connection.transaction():
                    await connection.execute(
                        "SELECT pg_advisory_xact_lock(hashtext($1))", self.table
                    )
                    for statement in self._sql.create:
                        await connection.execute(statement)
                self._pool = pool
        return self

    async def _fetch(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        pool = self._pool if self._pool is not None else (await self.open())._pool
        rows = await pool.fetch(statement, *args)
        return [tuple(row) for row in rows]

    async def close(self) -> None:
        """Close the pool (a later use opens a new one)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
