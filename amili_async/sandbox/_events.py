"""A tiny in-process pub/sub for sandbox events (webhook delivery subscribes here).

Event shapes follow the docs' webhook payloads: ``{id, type, source, timeStamp, data}``.
``BATCH_COMPLETED`` data: ``{batchId, organizationId, status}``; ``SETTLEMENT_CREATED`` data:
``{settlementId, organizationId, settlementDate, invoiceId, invoiceNumber, caseNumber}``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from ._wire import fmt_ms, now_ms

__all__ = ["BATCH_COMPLETED", "SETTLEMENT_CREATED", "Event", "EventBus"]

# The event types of the docs' webhook payloads.
BATCH_COMPLETED = "BATCH_COMPLETED"
SETTLEMENT_CREATED = "SETTLEMENT_CREATED"

_log = logging.getLogger(__name__)


@attrs.frozen
class Event:
    """One published event, shaped like the docs' webhook payload."""

    id: str
    type: str
    source: str
    time_stamp: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The webhook payload."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "timeStamp": self.time_stamp,
            "data": self.data,
        }


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out to subscribers; a subscriber's exception is logged, not raised."""

    def __init__(self, history: int = 10_000) -> None:
        self._subscribers: list[tuple[frozenset[str] | None, Subscriber]] = []
        #: The most recent events, oldest first.
        self.history: collections.deque[Event] = collections.deque(maxlen=history)

    def subscribe(
        self, callback: Subscriber, types: str | tuple[str, ...] | None = None
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for every event (of ``types``); returns an unsubscriber."""
        wanted = frozenset((types,) if isinstance(types, str) else types) if types else None
        entry = (wanted, callback)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, type: str, data: dict[str, Any]) -> Event:
        """Record an event of ``type`` with ``data`` and hand it to every interested subscriber."""
        event = Event(str(uuid.uuid4()), type, "COLLECTION", fmt_ms(now_ms()), data)
        self.history.append(event)
        for wanted, callback in list(self._subscribers):
            if wanted is None or type in wanted:
                try:
                    callback(event)
                except Exception:
                    _log.exception("sandbox event subscriber failed on %s", type)
        return event

    def wait_for(
        self, type: str, predicate: Callable[[Event], bool] | None = None
    ) -> asyncio.Future[Event]:
        """A future resolved by the next event of ``type`` matching ``predicate``.

        Subscribe *before* triggering the event. Cancelling the future unsubscribes.
        """
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

        def on_event(event: Event) -> None:
            if not future.done() and (predicate is None or predicate(event)):
                future.set_result(event)
                unsubscribe()

        unsubscribe = self.subscribe(on_event, type)
        future.add_done_callback(lambda _: unsubscribe())
        return future
