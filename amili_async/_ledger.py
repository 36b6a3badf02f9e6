"""The bulk ledger: what became of each item, by the item's content key, across runs.

The API's idempotency key is per POST, so on its own it only protects a chunk resent exactly
as it was. The ledger records, per *item* key (see `item_keys`), the chunk key it was sent
under and its offset there (written and synced before the POST), then its outcome. A later
run, chunked in another way, in another order or with rows edited, asks the ledger first:
an item already created is reported as such and not sent; an item whose chunk's outcome was
never learnt is looked up by that chunk's key (GetBatchesByOrganization `IdempotencyKey`) and
read from that batch at its offset; only the rest is sent. (Design: docs/DESIGN.md, "Bulk
re-runs".)

A ledger is in memory (one process) or an append-only JSON Lines file (a line per chunk sent,
a line per outcome learnt); a file cut short by a crash loses at most its last line, which
only said what the next run looks up anyway.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from . import _json

__all__ = ["Ledger", "LedgerEntry", "LedgerError", "chunk_key_of", "item_keys"]

State = Literal["sent", "succeeded", "failed"]
Learnt = tuple[str, Literal["succeeded", "failed"], str, int, "str | None", Any]
"""What `Ledger.outcomes` takes per item: (key, state, chunk key, offset, batch id, result)."""


class LedgerError(ValueError):
    """A ledger file that cannot be read; the message names the file and the line."""


@attrs.frozen
class LedgerEntry:
    """The last thing known of one item key."""

    state: State
    chunk_key: str
    """The idempotency key of the chunk the item was (last) sent in."""
    offset: int
    """The item's position in that chunk (its index in the batch's results)."""
    batch_id: str | None = None
    result: Any = None
    """The batch's `succeeded` entry (ids only, wire JSON) once the item was created."""


def item_keys(namespace: str) -> Callable[[_json.Fragment | bytes], str]:
    """A function giving each item of one input its content key, from its wire JSON.

    The key digests `namespace` (organisation and kind of item), the item's wire JSON (of the
    checked model, so a dict and the model it reads as have one key: the very bytes its POST
    sends, encoded once by `bulk`) and how many identical items came before it in this input:
    two identical payments in one file are two payments, and remain two (not four) when the
    file is run again.
    """
    seen: dict[bytes, int] = {}
    prefix = namespace.encode() + b"\x00"

    def key(wire: _json.Fragment | bytes) -> str:
        digest = hashlib.sha256(prefix)
        digest.update(wire)
        content = digest.digest()
        occurrence = seen.get(content, 0)
        seen[content] = occurrence + 1
        return hashlib.sha256(content + occurrence.to_bytes(8, "big")).hexdigest()[:32]

    return key


def chunk_key_of(keys: Iterable[str]) -> str:
    """The idempotency key of a chunk: a digest of its items' keys, in the order sent.

    The same items in the same order always get the same key (a resend the server replays);
    any other chunk gets another.
    """
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode() + b"\x00")
    return str(uuid.UUID(bytes=digest.digest()[:16], version=5))


class Ledger:
    """Item key -> what became of it; kept in `path` (JSON Lines) or, without one, in memory.

    One ledger serves one process at a time (it is not locked): the CLI keeps one per input
    file, `create_many(..., ledger=Ledger())` one per program.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._entries: dict[str, LedgerEntry] = {}
        self._stream: IO[bytes] | None = None
        if self.path is not None:
            self._load(self.path)

    def __repr__(self) -> str:
        return f"Ledger(path={str(self.path) if self.path else None!r}, items={len(self)})"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> LedgerEntry | None:
        """What is known of item `key`; None: never sent (as far as this ledger knows)."""
        return self._entries.get(key)

    def sent(self, chunk_key: str, keys: list[str]) -> None:
        """Record, durably, that these items go out in one chunk now (before its POST)."""
        for offset, key in enumerate(keys):
            self._entries[key] = LedgerEntry("sent", chunk_key, offset)
        self._append({"sent": chunk_key, "items": keys}, sync=True)

    def outcome(
        self,
        key: str,
        state: Literal["succeeded", "failed"],
        chunk_key: str,
        offset: int,
        batch_id: str | None = None,
        result: Any = None,
    ) -> None:
        """Record what became of item `key` (written through; synced with the next `sent`)."""
        self.outcomes([(key, state, chunk_key, offset, batch_id, result)])

    def outcomes(self, learnt: Iterable[Learnt]) -> None:
        """`outcome` of several items (a chunk's), written through in one write."""
        lines = []
        for key, state, chunk_key, offset, batch_id, result in learnt:
            self._entries[key] = LedgerEntry(state, chunk_key, offset, batch_id, result)
            line = {state: key, "chunk": chunk_key, "offset": offset, "batch": batch_id}
            if result is not None:
                line["result"] = result
            lines.append(line)
        if lines:
            self._append(*lines, sync=False)

    def close(self) -> None:
        """Sync and close the file (a memory ledger has nothing to close)."""
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            self._stream = None

    def _append(self, *lines: dict[str, Any], sync: bool) -> None:
        if self.path is None:
            return
        if self._stream is None:
            self._stream = self.path.open("ab")
        self._stream.write(b"".join(_json.dumps(line) + b"\n" for line in lines))
        self._stream.flush()  # in the OS: survives the process being killed
        if sync:
            os.fsync(self._stream.fileno())  # on the disk: survives a power cut

    def _load(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        lines = data.split(b"\n")
        if lines[-1]:  # the last line was cut short by a crash: drop it, append after the rest
            with path.open("r+b") as stream:
                stream.truncate(len(data) - len(lines[-1]))
        for number, raw in enumerate(lines[:-1], 1):
            try:
                self._replay(_json.loads(raw))
            except (_json.DecodeError, KeyError, TypeError, ValueError) as error:
                raise LedgerError(
                    f"{path}: line {number} is not a ledger record ({type(error).__name__}); "
                    "the file was changed by hand or by another program: restore it, or move "
                    "it away to submit everything as new items"
                ) from None

    def _replay(self, line: dict[str, Any]) -> None:
        if "sent" in line:
            chunk = str(line["sent"])
            for offset, key in enumerate(line["items"]):
                self._entries[str(key)] = LedgerEntry("sent", chunk, offset)
            return
        state: State = "succeeded" if "succeeded" in line else "failed"
        self._entries[str(line[state])] = LedgerEntry(
            state, str(line["chunk"]), int(line["offset"]), line.get("batch"), line.get("result")
        )
