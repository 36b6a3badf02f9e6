"""The sandbox's in-memory Amili: one facade over the store, batches, cases, legacy data and
idempotency, so request handlers stay thin and each rule lives in the module of its job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ._batches import BatchQueue
from ._cases import case_action
from ._config import SandboxConfig
from ._events import EventBus
from ._idempotency import Idempotency
from ._legacy import LegacyStore, find_case
from ._records import BatchRecord, InvoiceRecord
from ._seed import CASE_NUMBER_BASE, seed_invoices
from ._store import Clock, OrgState

__all__ = ["SandboxState"]

_T = TypeVar("_T")


class SandboxState:
    """All organisations plus the batch worker, events, legacy stores and idempotency."""

    def __init__(self, config: SandboxConfig, events: EventBus | None = None) -> None:
        if not config.orgs:
            raise ValueError("SandboxConfig.orgs must name at least one organisation")
        self.config = config
        self.events = events or EventBus()
        seeded = seed_invoices(config.invoices, config.seed, config.orgs[0])
        self.orgs: dict[str, OrgState] = {
            org.id: OrgState(org, seeded if k == 0 else None) for k, org in enumerate(config.orgs)
        }
        self.clock = Clock(seeded.created[-1] if seeded.n else 0)
        self.batches = BatchQueue(
            config, self.orgs, self.clock, self.events, CASE_NUMBER_BASE + seeded.n
        )
        self.legacy = LegacyStore(config)
        self.idempotency = Idempotency()

    @property
    def default_org(self) -> OrgState:
        """The first (seeded) organisation."""
        return next(iter(self.orgs.values()))

    @property
    def batches_by_id(self) -> dict[str, BatchRecord]:
        """Every organisation's batches by id."""
        return self.batches.by_id

    @property
    def legacy_batches(self) -> dict[str, dict[str, Any]]:
        """Batches posted to the legacy ``/webapi/api/Batch``, by batchid."""
        return self.legacy.batches

    @property
    def attachments(self) -> dict[str, dict[str, Any]]:
        """Attachments posted to the legacy ``/webapi/api/Attachment``, by attachmentid."""
        return self.legacy.attachments

    # ------------------------------------------------------------------ batches
    def submit_batch(
        self,
        org: OrgState,
        batch_type: str,
        client_id: str,
        idempotency_key: str | None,
        items: list[dict[str, Any]],
        batch_url_base: str,
    ) -> bytes:
        """Queue a write batch once per ``IdempotencyKey``; answer the 202 body. Synchronous,
        so two identical requests cannot race between the idempotency check and the store."""
        return self.run_idempotent(
            org.org.id,
            batch_type,
            idempotency_key,
            items,
            lambda: self.batches.submit(
                org, batch_type, client_id, idempotency_key, items, batch_url_base
            ),
        )

    async def run_worker(self) -> None:
        """Process queued batches until cancelled (the app runs this as one task)."""
        await self.batches.run_worker()

    def process_batch(self, batch: BatchRecord) -> None:
        """Process a QUEUED batch now."""
        self.batches.process(batch)

    # ------------------------------------------------------------------ idempotency
    def run_idempotent(
        self, scope: str, operation: str, key: str | None, request: Any, run: Callable[[], _T]
    ) -> _T:
        """Run ``run`` at most once per (scope, operation, ``IdempotencyKey``); see
        ``_idempotency``."""
        return self.idempotency.run(scope, operation, key, request, run)

    # ------------------------------------------------------------------ cases
    def case_action(self, org: OrgState, case_ids: list[str], action: str) -> None:
        """Apply ``action`` to all of ``case_ids`` or to none (404 unknown, 409 illegal)."""
        case_action(org, case_ids, action, self.clock, self.events)

    # ------------------------------------------------------------------ legacy
    def legacy_batch(
        self,
        accessible: list[OrgState],
        *,
        creditor_id: str | None,
        customer_ref: str | None,
        include_closed: bool,
        last_settlement_id: str | None,
    ) -> dict[str, Any]:
        """The legacy batch export of the ``accessible`` organisations."""
        return self.legacy.export(
            accessible,
            creditor_id=creditor_id,
            customer_ref=customer_ref,
            include_closed=include_closed,
            last_settlement_id=last_settlement_id,
        )

    def store_legacy_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        """Keep a posted legacy batch; answer it with its new batchid."""
        return self.legacy.store_batch(body)

    def store_attachment(
        self, filename: str | None, content_type: str | None, data: bytes, case_id: str | None
    ) -> str:
        """Keep a posted legacy attachment; answer its id."""
        return self.legacy.store_attachment(filename, content_type, data, case_id)

    def find_case_any(self, orgs: list[OrgState], case_id: str) -> InvoiceRecord | None:
        """The case with this id in any of ``orgs``, or None."""
        return find_case(orgs, case_id)
