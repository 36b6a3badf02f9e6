"""Shared helpers of the benchmarks: realistic invoices, the processes, the rows and their table.

Every figure is measured in fresh client processes (`run_child`) against a sandbox running in
yet another process (`sandbox`), so neither pays for the other and each peak RSS is its own.
A row's "min" column is the figure computed from each side's least disturbed (fastest)
repetition, its "median" column from each side's median repetition; a row is judged on its
median (on its worst repetition where every repetition must meet the target).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SPEC = ROOT / "openapi" / "amili-autocollect.yaml"
# Properties the sandbox (like the docs' example) sends as null although the spec does not say
# they may be null: generators that take the spec literally (msgspec, openapi-python-client)
# get a copy of it where these admit null (`nullable_spec`).
NULLABLE = {
    "Invoice": ("closedAt",),
    "Debtor": (
        "firstname",
        "lastname",
        "identificationNumber",
        "organizationNumber",
        "dateOfBirth",
    ),
}

# ----------------------------------------------------------------------------- invoices
_FIRST = ("Kari", "Ola", "Ingrid", "Lars", "Sofie", "Jonas", "Nora", "Emil", "Maja", "Henrik")
_LAST = ("Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Berg", "Haugen", "Bakke")
_PLACES = (("Oslo", "01"), ("Bergen", "50"), ("Trondheim", "70"), ("Stavanger", "40"))
_STREETS = ("Storgata", "Kirkegata", "Strandveien", "Møllergata", "Parkveien", "Skoleveien")
_SUFFIXES = ("AS", "Eiendom AS", "Regnskap AS", "Bygg AS", "Handel AS")
_STATUS_WEIGHTS = {"OPEN": 84, "CLOSED": 10, "PAUSED": 4, "WITHDRAWN": 2}  # the sandbox's mix
_TYPES = ("PAYMENT_REMINDER", "NOTICE", "COLLECTION_NOTICE")
_YEAR_MS = 365 * 86_400_000
_START = dt.datetime(2024, 1, 2, 7, tzinfo=dt.UTC)


def _stamp(t: dt.datetime) -> str:
    """A date-time as the API writes it: UTC, milliseconds, "Z"."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _money(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)


def _debtor(rng: random.Random, i: int) -> dict[str, Any]:
    city, zip_prefix = rng.choice(_PLACES)
    common = {
        "customerNumber": f"{200_000 + i * 7 + rng.randrange(7)}",
        "phoneNumbers": [
            {
                "countryCode": "+47",
                "originalValue": f"+47 9{_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 3)}",
                "value": f"+479{_digits(rng, 7)}",
            }
        ],
        "addresses": [
            {
                "street": f"{rng.choice(_STREETS)} {rng.randrange(1, 200)}",
                "city": city,
                "zipCode": zip_prefix + _digits(rng, 2),
                "countryCode": "NO",
            }
        ],
    }
    last = rng.choice(_LAST)
    if rng.random() < 0.11:  # the sandbox's share of company debtors
        return {
            "type": "COMPANY",
            "firstname": None,
            "lastname": None,
            "name": f"{last} {rng.choice(_SUFFIXES)}",
            "identificationNumber": None,
            "organizationNumber": "9" + _digits(rng, 8),
            "dateOfBirth": None,
            "emails": [{"value": f"post@{last.lower()}{i}.example"}],
            **common,
        }
    first = rng.choice(_FIRST)
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(65 * 365))
    return {
        "type": "PRIVATE",
        "firstname": first,
        "lastname": last,
        "name": f"{first} {last}",
        "identificationNumber": born.strftime("%d%m%y") + _digits(rng, 5),
        "organizationNumber": None,
        "dateOfBirth": born.isoformat(),
        "emails": [{"value": f"{first.lower()}.{last.lower()}{i}@epost.example"}],
        **common,
    }


def _amounts(rng: random.Random, status: str, original: float) -> dict[str, float]:
    """Amounts consistent with the status: open ones mostly unpaid (zeros), closed ones paid."""
    paid = credited = 0.0
    if status == "CLOSED":
        paid = original
    elif status == "WITHDRAWN":
        credited = original
    elif rng.random() < 0.25:  # a part payment
        paid = round(original * rng.uniform(0.1, 0.9), 2)
    if status in ("OPEN", "PAUSED") and rng.random() < 0.15:
        credited = 1.0  # a 1 kr rounding credit
    remaining = round(original - paid - credited, 2)
    return {
        "currentAmount": original,
        "remainingAmount": max(remaining, 0.0),
        "paidAmount": paid,
        "creditedAmount": credited,
    }


def invoice(rng: random.Random, i: int, org: dict[str, str]) -> dict[str, Any]:
    """One invoice shaped like the sandbox's and the docs' example, with its own values:
    ids, dates (created within a year, to the millisecond), amounts, debtor."""
    status = rng.choices(list(_STATUS_WEIGHTS), weights=list(_STATUS_WEIGHTS.values()))[0]
    created = _START + dt.timedelta(milliseconds=rng.randrange(_YEAR_MS))
    invoiced = created - dt.timedelta(milliseconds=rng.randrange(2 * 86_400_000, 20 * 86_400_000))
    due = invoiced + dt.timedelta(days=rng.choice((10, 14, 20, 30)))
    closed = created + dt.timedelta(milliseconds=rng.randrange(86_400_000, 90 * 86_400_000))
    invoice_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    original = _money(rng, 150, 60_000)
    amounts = _amounts(rng, status, original)
    return {
        "id": invoice_id,
        "organization": org,
        "invoiceNumber": f"INV-2024-{100_000 + i:06d}",
        "collectionCaseNumber": str(5_000_001 + i),
        "type": rng.choice(_TYPES),
        "status": status,
        "createdAt": _stamp(created),
        "closedAt": _stamp(closed) if status in ("CLOSED", "WITHDRAWN") else None,
        "originalInvoiceAmount": original,
        "currency": "NOK",
        "invoiceDate": _stamp(invoiced),
        "dueDate": _stamp(due),
        "ocrReferenceNumber": _digits(rng, 15),
        "uniqueSourceInvoiceId": f"erp-order-{rng.getrandbits(40):012x}",
        "claims": [
            {
                "type": "PRINCIPAL",
                "originalAmount": original,
                **amounts,
                "currency": "NOK",
                "invoiceId": invoice_id,
            }
        ],
        "debtors": [_debtor(rng, i)],
        **amounts,
    }


def invoice_page(count: int, seed: int = 7) -> dict[str, Any]:
    """A list response of `count` invoices, each with its own dates, amounts, ids and names."""
    rng = random.Random(seed)
    org = {
        "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "organizationNumber": "912345688",
        "name": "Nordlys Eiendom AS",
    }
    items = [invoice(rng, i, org) for i in range(count)]
    return {"data": items, "summary": {"status": "SUCCESS", "nextPageToken": "opaque-token"}}


def amounts_share_zero_or_one(page: dict[str, Any]) -> float:
    """The share of amounts that are 0 or 1 (the sandbox's pages: about a third)."""
    values = [
        v
        for item in page["data"]
        for obj in (item, *item["claims"])
        for k, v in obj.items()
        if k.endswith("Amount")
    ]
    return sum(v in (0, 1) for v in values) / len(values)


def nullable_spec(tmp: Path) -> Path:
    """A copy of the spec in which the `NULLABLE` properties admit null (OpenAPI 3.1 style)."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    for schema, names in NULLABLE.items():
        for name in names:
            prop = spec["components"]["schemas"][schema]["properties"][name]
            kind = prop.get("type")
            if isinstance(kind, list):  # the spec may declare it nullable already
                prop["type"] = kind if "null" in kind else [*kind, "null"]
            else:
                assert isinstance(kind, str), f"{schema}.{name}: not a plain type"
                prop["type"] = [kind, "null"]
    out = tmp / "amili-autocollect.nullable.yaml"
    out.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def tool_env() -> dict[str, str]:
    """The environment for code generators: the venv's tools (ruff) first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


# ----------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Sandbox:
    """A running sandbox process (bench/_sandbox.py) and how to reach it."""

    base_url: str
    token_url: str
    client_id: str
    client_secret: str
    org: str

    def stats(self) -> dict[str, int]:
        """Requests the sandbox has counted: {"token": POST /token, "api": everything else}."""
        origin = self.token_url.rsplit("/", 1)[0]
        with urllib.request.urlopen(f"{origin}/bench/stats", timeout=10) as resp:
            stats: dict[str, int] = json.load(resp)
            return stats

    def token(self) -> str:
        """A fresh access token for the default client (one client-credentials grant)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(self.token_url, data=data, timeout=10) as resp:
            return str(json.load(resp)["access_token"])

    def invoice_ids(self, token: str, count: int) -> list[str]:
        """The ids of the first `count` invoices of the seeded organisation."""
        ids: list[str] = []
        page_token = None
        while len(ids) < count:
            query = {"PageSize": "1000", **({"PageToken": page_token} if page_token else {})}
            url = f"{self.base_url}/orgs/{self.org}/invoices?{urllib.parse.urlencode(query)}"
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=30) as resp:
                page = json.load(resp)
            ids += [item["id"] for item in page["data"]]
            page_token = page["summary"].get("nextPageToken")
            if not page_token:
                break
        assert len(ids) >= count, f"the sandbox has only {len(ids)} invoices"
        return ids[:count]


@contextmanager
def sandbox(
    invoices: int, faults: str | None = None, rate_limit: float | None = None
) -> Iterator[Sandbox]:
    """Run the sandbox in a child process; yield it once it listens; stop it afterwards."""
    cmd = [sys.executable, str(BENCH / "_sandbox.py"), f"--invoices={invoices}"]
    if faults:
        cmd.append(f"--faults={faults}")
    if rate_limit:
        cmd.append(f"--rate-limit={rate_limit}")
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # printed once the server listens
        if not line:
            raise RuntimeError(f"the sandbox did not start (exit status {child.wait()})")
        yield Sandbox(**json.loads(line))
    finally:
        child.terminate()
        child.wait(timeout=30)


def run_child(script: str, **params: Any) -> dict[str, Any]:
    """Run one measurement of bench/`script` in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, str(BENCH / script), "--child", json.dumps(params)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench/{script} {params.get('kind', '')} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def instructions(script: str, loops: int, **params: Any) -> float:
    """Instructions of one loop of bench/`script`'s child (valgrind callgrind, load-free):
    the child run with `loops` loops less the same run with none, over `loops`."""

    def total(n: int) -> int:
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
        cmd += [str(BENCH / script), "--child", json.dumps({**params, "loops": n})]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or found is None:
            raise RuntimeError(f"callgrind of bench/{script} failed:\n{proc.stderr[-2000:]}")
        return int(found.group(1))

    return (total(loops) - total(0)) / loops


def has_valgrind() -> bool:
    """Whether instruction counts can be taken (valgrind on PATH)."""
    return shutil.which("valgrind") is not None


def child_main(measure: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The entry point of a measurement process: `script.py --child PARAMS_JSON`."""
    if len(sys.argv) != 3 or sys.argv[1] != "--child":
        sys.exit(f"{sys.argv[0]} is run by bench/run.py (make bench)")
    print(json.dumps(measure(json.loads(sys.argv[2]))))


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- rows
_CHECKS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda v, goal: v <= goal,
    "<": lambda v, goal: v < goal,
    ">=": lambda v, goal: v >= goal,
    ">": lambda v, goal: v > goal,
    "==": lambda v, goal: v == goal,
}


@dataclass(frozen=True)
class Row:
    """One figure: from each side's fastest repetition (low) and median repetition (mid)."""

    name: str
    op: str | None  # None: information only, no target
    goal: float
    low: float
    mid: float
    unit: str = "x"
    judged: float | None = None  # what is checked against the target (default: mid)
    reps: int = 0

    @property
    def value(self) -> float:
        return self.mid if self.judged is None else self.judged

    @property
    def verdict(self) -> str:
        if self.op is None:
            return "info"
        return "PASS" if _CHECKS[self.op](self.value, self.goal) else "MISS"

    def cells(self) -> list[str]:
        target = "-" if self.op is None else f"{self.op} {fmt(self.goal, self.unit)}"
        ratio = "-" if self.op is None or not self.goal else f"{self.value / self.goal + 0.0:.2f}"
        low, mid = fmt(self.low, self.unit), fmt(self.mid, self.unit)
        return [self.name, target, low, mid, ratio, self.verdict]


_DECIMALS = {"µs": 0, "ms": 3, "s": 2, "MB": 1, "M": 1}


def fmt(value: float, unit: str) -> str:
    """A figure with its unit: "2.13x", "0.431 ms", "62.1 MB", "24,689 invoices/s"."""
    if unit == "x":
        return f"{value:.2f}x"
    if unit in _DECIMALS:
        digits = _DECIMALS[unit]
        return f"{round(value, digits) + 0.0:.{digits}f} {unit}"  # + 0.0: never "-0.0"
    if unit == "":
        return f"{value:g}"
    return f"{value:,.0f} {unit}"


def ratio(
    name: str, op: str | None, goal: float, num: Sequence[float], den: Sequence[float]
) -> Row:
    """The figure num / den (two lists of repetitions): min(num)/min(den), median/median."""
    low = min(num) / min(den)
    mid = statistics.median(num) / statistics.median(den)
    return Row(name, op, goal, low, mid, reps=min(len(num), len(den)))


def value(
    name: str,
    op: str | None,
    goal: float,
    samples: Sequence[float],
    unit: str,
    *,
    scale: float = 1.0,
    worst: Callable[[Sequence[float]], float] | None = None,
) -> Row:
    """A plain figure over repetitions; `worst` (max or min) judges every repetition."""
    judged = None if worst is None else worst(samples) * scale
    low, mid = min(samples) * scale, statistics.median(samples) * scale
    return Row(name, op, goal, low, mid, unit, judged, len(samples))


def rate(name: str, count: float, seconds: Sequence[float], unit: str) -> Row:
    """count / seconds as a rate (information): from the fastest and the median repetition."""
    low, mid = count / min(seconds), count / statistics.median(seconds)
    return Row(name, None, 0.0, low, mid, unit, reps=len(seconds))


HEADER = ["row", "target", "min", "median", "ratio to target", "verdict"]


def table(rows: Sequence[Row]) -> list[str]:
    """The rows as aligned text lines, separated by " | "."""
    cells = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return [line.rstrip() for line in lines]


# ----------------------------------------------------------------------------- machine
PACKAGES = (
    "amili-async",
    "aiohttp",
    "orjson",
    "attrs",
    "cattrs",
    "pydantic",
    "pydantic-core",
    "msgspec",
    "httpx",
    "openapi-python-client",
    "datamodel-code-generator",
)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return {
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU": cpu,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "packages": ", ".join(versions),
    }
