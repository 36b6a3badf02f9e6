"""Shared helpers of the benchmarks: timing, a realistic invoice page, table printing."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from typing import Any

# The complete GetInvoiceById example of the docs (000_4e79d02459dacddd.txt), as one item.
SEED_INVOICE: dict[str, Any] = {
    "id": "497f6eca-6276-4993-bfeb-53cbbbba6f08",
    "organization": {
        "id": "497f6eca-6276-4993-bfeb-53cbbbba6f08",
        "organizationNumber": "923609016",
        "name": "Fjord Regnskap AS",
    },
    "invoiceNumber": "INV-2024-00123",
    "collectionCaseNumber": "5000001",
    "type": "PAYMENT_REMINDER",
    "status": "OPEN",
    "createdAt": "2019-08-24T14:15:22.123Z",
    "closedAt": None,
    "originalInvoiceAmount": 4500.10,
    "currency": "NOK",
    "invoiceDate": "2019-08-24T14:15:22.123Z",
    "dueDate": "2019-09-24T14:15:22.123Z",
    "ocrReferenceNumber": "12345678903",
    "uniqueSourceInvoiceId": "erp-order-9981",
    "claims": [
        {
            "type": "PRINCIPAL",
            "originalAmount": 4500.10,
            "currentAmount": 4500.10,
            "remainingAmount": 3500.05,
            "paidAmount": 1000.05,
            "creditedAmount": 0,
            "currency": "NOK",
            "invoiceId": "4f163819-178d-470c-a246-d6768476a6ec",
        }
    ],
    "debtors": [
        {
            "type": "PRIVATE",
            "firstname": "Kari",
            "lastname": "Nordmann",
            "name": "Kari Nordmann",
            "customerNumber": "C-10001",
            "identificationNumber": "01017012345",
            "organizationNumber": None,
            "dateOfBirth": "1970-01-01",
            "emails": [{"value": "kari@example.no"}],
            "phoneNumbers": [
                {"countryCode": "+47", "originalValue": "912 34 567", "value": "+4791234567"}
            ],
            "addresses": [
                {"street": "Storgata 1", "city": "Oslo", "zipCode": "0155", "countryCode": "NO"}
            ],
        }
    ],
    "currentAmount": 4500.10,
    "remainingAmount": 3500.05,
    "paidAmount": 1000.05,
    "creditedAmount": 0,
}


def invoice_page(count: int, seed: int = 7) -> dict[str, Any]:
    """A list response of `count` distinct invoices shaped like the docs' example."""
    rng = random.Random(seed)
    items = []
    for i in range(count):
        item = copy.deepcopy(SEED_INVOICE)
        item["id"] = f"{rng.getrandbits(128):032x}"
        item["invoiceNumber"] = f"INV-{i:08d}"
        amount = round(rng.uniform(100, 50_000), 2)
        item["originalInvoiceAmount"] = item["currentAmount"] = amount
        item["claims"][0]["originalAmount"] = amount
        items.append(item)
    return {"data": items, "summary": {"status": "SUCCESS", "nextPageToken": "opaque-token"}}


def best_of(fn: Callable[[], object], *, repeat: int = 7, number: int = 50) -> float:
    """Seconds per call: the best of `repeat` runs of `number` calls (least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
