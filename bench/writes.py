"""The write path: client CPU per item of `create_many` (from dicts, from models) and of the CLI's
`submit`, against a raw POST + poll floor.

Every client creates the same N new invoices (each with its own number, amounts, dates and
debtor: private or company, with e-mail, phone and address) in chunks of 500 against the
sandbox in another process, each kind in its own fresh process, side by side in one run:

- raw: aiohttp + orjson: one POST per chunk of ready JSON-shaped dicts, then GET of the
  batch until it is finished (the floor: no checks, no models);
- dicts: `client.invoices.create_many(org, dicts)` with Decimal amounts and date objects, as
  a program builds them;
- models: the same with `models.NewInvoice` built before the clock starts;
- submit: `amili-async submit invoices` of the same rows as a CSV file (validation, ledger,
  report included), via the CLI's `submit` in the client process.

Client CPU is `time.process_time()` of the client process over all N items (the sandbox's is
not in it), divided by N, after a warm-up chunk of other items in the same process (the
connection, the token and the compiled functions are then ready, as in any long run).
Targets: dicts <= 15 µs/item, CLI submit <= 60 µs/row.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import orjson
from _common import Row, child_main, ratio, run_child, sandbox, value

from amili_async import AmiliClient, models, wire
from amili_async._cli._submit import submit

KINDS = ("raw", "dicts", "models", "submit")
CHUNK = 500  # bulk.DEFAULT_CHUNK_SIZE
_FIRST = ("Kari", "Ola", "Ingrid", "Lars", "Sofie", "Jonas", "Nora", "Emil", "Maja", "Henrik")
_LAST = ("Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Berg", "Haugen", "Bakke")
_CITIES = (("Oslo", "01"), ("Bergen", "50"), ("Trondheim", "70"), ("Stavanger", "40"))
_TYPES = ("PAYMENT_REMINDER", "NOTICE", "COLLECTION_NOTICE")


def new_invoice(rng: random.Random, i: int) -> dict[str, Any]:
    """One NewInvoice as a program builds it: wire names, Decimal money, date objects."""
    city, zip_prefix = rng.choice(_CITIES)
    last = rng.choice(_LAST)
    invoiced = dt.date(2024, 1, 2) + dt.timedelta(days=rng.randrange(365))
    debtor: dict[str, Any] = {
        "customerNumber": f"{200_000 + i * 7 + rng.randrange(7)}",
        "phoneNumbers": [{"countryCode": "+47", "value": f"+479{rng.randrange(10**7):07d}"}],
        "addresses": [
            {
                "street": f"Storgata {rng.randrange(1, 200)}",
                "city": city,
                "zipCode": zip_prefix + f"{rng.randrange(100):02d}",
                "countryCode": "NO",
            }
        ],
    }
    if rng.random() < 0.11:
        debtor |= {
            "type": "COMPANY",
            "name": f"{last} Eiendom AS",
            "organizationNumber": f"9{rng.randrange(10**8):08d}",
            "emails": [{"value": f"post@{last.lower()}{i}.example"}],
        }
    else:
        first = rng.choice(_FIRST)
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(65 * 365))
        debtor |= {
            "type": "PRIVATE",
            "firstname": first,
            "lastname": last,
            "name": f"{first} {last}",
            "identificationNumber": born.strftime("%d%m%y") + f"{rng.randrange(10**5):05d}",
            "dateOfBirth": born,
            "emails": [{"value": f"{first.lower()}.{last.lower()}{i}@epost.example"}],
        }
    return {
        "type": rng.choice(_TYPES),
        "invoiceNumber": f"INV-2025-{100_000 + i:06d}",
        "originalInvoiceAmount": Decimal(rng.randrange(15_000, 6_000_000)) / 100,
        "currency": "NOK",
        "invoiceDate": invoiced,
        "dueDate": invoiced + dt.timedelta(days=rng.choice((10, 14, 20, 30))),
        "uniqueSourceInvoiceId": f"erp-order-{rng.getrandbits(40):012x}",
        "ocrReferenceNumber": f"{rng.randrange(10**15):015d}",
        "debtors": [debtor],
    }


def invoices(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [new_invoice(rng, seed * 1_000_000 + i) for i in range(count)]


def _cell(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts dotted, list items dotted by index (the submit CSV's column names)."""
    out: dict[str, Any] = {}
    for key, cell in data.items():
        name = prefix + key
        if isinstance(cell, dict):
            out.update(flatten(cell, name + "."))
        elif isinstance(cell, list):
            for index, item in enumerate(cell):
                if isinstance(item, dict):
                    out.update(flatten(item, f"{name}.{index}."))
                else:
                    out[f"{name}.{index}"] = item
        elif cell is not None:
            out[name] = cell
    return out


def write_csv(path: Path, items: list[dict[str, Any]]) -> None:
    """The items as the CSV a user submits: one column per field, `debtors.0.name` nested."""
    rows = [{k: _cell(v) for k, v in flatten(item).items()} for item in items]
    header = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


async def run_raw(params: dict[str, Any], items: list[dict[str, Any]]) -> None:
    def default(value: Any) -> Any:
        return orjson.Fragment(str(value).encode())  # Decimal: exact JSON number

    base, org = params["base_url"], params["org"]
    headers = {"Authorization": f"Bearer {params['token']}", "Accept": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def chunk(start: int) -> None:
            body = orjson.dumps({"invoices": items[start : start + CHUNK]}, default=default)
            post_headers = {"Content-Type": "application/json", "Idempotency-Key": str(start)}
            async with session.post(
                f"{base}/orgs/{org}/invoices", data=body, headers=post_headers
            ) as r:
                batch = orjson.loads(await r.read())["data"]["batchId"]
            while True:
                await asyncio.sleep(0.25)  # what Batches.wait does before its first poll
                async with session.get(f"{base}/orgs/{org}/batches/{batch}") as r:
                    status = orjson.loads(await r.read())["data"]["status"]
                if status not in ("QUEUED", "PROCESSING", "PENDING"):
                    return

        starts = list(range(0, len(items), CHUNK))
        for i in range(0, len(starts), 4):  # DEFAULT_CONCURRENCY chunks in flight
            await asyncio.gather(*(chunk(s) for s in starts[i : i + 4]))


async def run_ours(params: dict[str, Any], items: list[Any], submit_csv: Path | None) -> int:
    async with AmiliClient(token=params["token"], base_url=params["base_url"]) as client:
        if submit_csv is not None:
            summary = await submit(client, "invoices", params["org"], submit_csv, progress=False)
            return summary.ok
        ok = 0
        async for result in client.invoices.create_many(params["org"], items):
            ok += result.ok
        return ok


def measure(params: dict[str, Any]) -> dict[str, Any]:
    kind, count, seed = params["kind"], params["count"], params["seed"]
    # A warm-up chunk first (connections, token, compiled functions), then the measured items.
    runs: list[tuple[list[Any], Path | None]] = []
    for n, items in enumerate((invoices(CHUNK, seed + 500_000), invoices(count, seed))):
        path = None
        if kind == "models":
            items = [wire.from_wire(item, models.NewInvoice) for item in items]
        elif kind == "submit":
            path = Path(params["tmp"]) / f"rows-{seed}-{n}.csv"
            write_csv(path, items)
        runs.append((items, path))
    cpu = 0.0
    for items, path in runs:
        start = time.process_time()
        if kind == "raw":
            asyncio.run(run_raw(params, items))
            ok = len(items)
        else:
            ok = asyncio.run(run_ours(params, items, path))
        cpu = time.process_time() - start
        if ok != len(items):
            raise RuntimeError(f"{kind}: {ok} of {len(items)} created")
    return {"cpu": cpu / count}


def rows(quick: bool) -> list[Row]:
    rounds, count = (2, 1000) if quick else (3, 4000)
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    seed = 1
    with tempfile.TemporaryDirectory() as tmp, sandbox(10) as sb:
        params = {"base_url": sb.base_url, "org": sb.org, "token": sb.token(), "tmp": tmp}
        for _ in range(rounds):
            for kind in KINDS:
                seed += 1  # every run creates invoices of its own
                out = run_child("writes.py", kind=kind, count=count, seed=seed, **params)
                cpu[kind].append(out["cpu"])
    name = "create_many client CPU/item"
    return [
        value(f"{name}: from dicts", "<=", 15, cpu["dicts"], "µs", scale=1e6),
        value(f"{name}: from models", None, 0, cpu["models"], "µs", scale=1e6),
        value(f"{name}: raw POST + poll floor", None, 0, cpu["raw"], "µs", scale=1e6),
        ratio(f"{name}: from dicts / raw floor", None, 0, cpu["dicts"], cpu["raw"]),
        value("CLI submit client CPU/row (CSV)", "<=", 60, cpu["submit"], "µs", scale=1e6),
    ]


if __name__ == "__main__":
    child_main(measure)
