"""`SqliteDedupeStore`: handled deliveries in an SQLite file, the single-host default of
`amili-async webhooks listen --store PATH`; it survives restarts of the receiver.

stdlib `sqlite3` on one worker thread of its own (one connection, so statements never
interleave inside the process; WAL and a busy timeout let other processes on the host share the
file). No dependency beyond the standard library.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

from ._dedupe import DEFAULT_DEDUPE_TTL, DEFAULT_LEASE
from ._sqlstore import DEFAULT_TABLE, SqlDedupeStore

__all__ = ["SqliteDedupeStore"]

BUSY_TIMEOUT = 5.0
"""Seconds a statement waits for another process's write lock: writes here take microseconds,
so waiting this long means something is wrong, and the sender retries the delivery anyway."""

_PLACEHOLDER = re.compile(r"\$(\d+)")


class SqliteDedupeStore(SqlDedupeStore):
    """`DedupeStore` in the SQLite database at `path` (created with its table on first use)."""

    def __init__(
        self,
        path: str | Path,
        *,
        table: str = DEFAULT_TABLE,
        ttl: float = DEFAULT_DEDUPE_TTL,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(table=table, ttl=ttl, lease=lease, clock=clock)
        self.path = Path(path)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="amili-webhooks-sqlite")
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteDedupeStore({str(self.path)!r}, table={self.table!r})"

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # Commits survive a crash of the process (what a restart needs); a power loss may
            # forget the last handled keys, which costs a duplicate callback, not a lost event.
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in self._sql.create:
                db.execute(statement)
            self._db = db
        return self._db

    def _run(self, statement: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        rows = self._open().execute(_PLACEHOLDER.sub(r"?\1", statement), args).fetchall()
        return [tuple(row) for row in rows]

    async def _fetch(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run, statement, args)

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    async def open(self) -> Self:
        """Open the database and create the table if needed."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._open)
        return self

    async def close(self) -> None:
        """Close the database and stop the worker thread (the store cannot be used after)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)
