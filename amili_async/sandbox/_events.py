"""A tiny in-process pub/sub for sandbox events (webhook delivery subscribes here).

Event shapes follow the docs' webhook payloads: ``{id, type, source, timeStamp, data}``.
``BATCH_COMPLETED`` data: ``{batchId, organizationId, status}``; ``SETTLEMENT_CREATED`` data:
``{settlementId, organizationId, settlementDate, invoiceId, invoiceNumber, caseNumber}``.
``CASE`` and ``CASE_UPDATED`` name themselves in ``eventType`` (not ``type``) and carry
``{orgId, caseId, caseNumber, type, status, invoices}`` (plus ``fields`` when updated), as the
docs' examples do.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ._wire import fmt_ms, now_ms

if TYPE_CHECKING:
    from ._records import InvoiceRecord

__all__ = [
    "BATCH_COMPLETED",
    "CASE",
    "CASE_UPDATED",
    "SETTLEMENT_CREATED",
    "WEBHOOK_EVENTS",
    "Event",
    "EventBus",
    "case_data",
]

# The event types of the docs' webhook payloads.
BATCH_COMPLETED = "BATCH_COMPLETED"
SETTLEMENT_CREATED = "SETTLEMENT_CREATED"
CASE = "CASE"
CASE_UPDATED = "CASE_UPDATED"
#: Every type the sandbox delivers to registered webhook URLs.
WEBHOOK_EVENTS = (BATCH_COMPLETED, SETTLEMENT_CREATED, CASE, CASE_UPDATED)
# The case events name themselves in ``eventType``; the others in ``type`` (the docs' examples).
_EVENT_TYPE_KEY = {CASE: "eventType", CASE_UPDATED: "eventType"}

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
            _EVENT_TYPE_KEY.get(self.type, "type"): self.type,
            "source": self.source,
            "timeStamp": self.time_stamp,
            "data": self.data,
        }


def case_data(record: InvoiceRecord, fields: list[str] | None = None) -> dict[str, Any]:
    """The ``data`` of a CASE event, or of CASE_UPDATED with the names of the changed
    ``fields`` (the docs show ``amounts``, ``status``, ``type``, ``description``; the sandbox
    also says ``subStatus`` for a sub-status step, inferred)."""
    data: dict[str, Any] = {
        "orgId": record.org.id,
        "caseId": record.case_id,
        "caseNumber": record.case_number,
        "type": record.type,
        "status": record.status,
        "invoices": [record.id],
    }
    if fields is not None:
        data["fields"] = fields
    return data


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

    def wants(self, type: str) -> bool:
        """Whether any subscriber takes events of ``type``: a publisher of one event per item
        (CASE per invoice) checks first, so a sandbox nobody listens to pays nothing for them."""
        return any(wanted is None or type in wanted for wanted, _ in self._subscribers)

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
