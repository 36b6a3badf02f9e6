"""GetInvoiceById: instructions and client CPU per call at concurrency 1, 32 and 256; throughput.

Four clients make the same requests (the same invoice ids, none twice in one process) with
the same bearer token, each in its own fresh process against the sandbox in another:

- raw: aiohttp + orjson.loads, no models (the floor);
- ours: `client.invoices.get(org, id)`;
- opc: the client openapi-python-client generates from the spec at bench time (from the copy
  in which the properties the server sends as null admit null: without it, its
  `Invoice.from_dict` raises on `"closedAt": null`);
- httpx: a plain `httpx.AsyncClient` + `response.json()`.

Client CPU is `time.process_time()` of the client process over N calls (the sandbox's CPU is
not in it); throughput is N over the wall time. Instructions per call (raw and ours, c=1 and
c=32) are counted by valgrind callgrind in the client process: a run of `COUNTED_CALLS` calls
after the warm-up less a run of the warm-up alone, over `COUNTED_CALLS` (load-independent).
Targets (issue 24): ours <= 1.2x raw's instructions per call at c=1 and c=32, <= 1.5x raw's
CPU per call at c=256; ours <= 1.10x raw CPU at c=1 and <= 1.15x at c=32; ours >= 8x the
httpx-based clients' throughput at c=32.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Row,
    child_main,
    has_valgrind,
    instructions,
    nullable_spec,
    rate,
    ratio,
    run_child,
    sandbox,
    tool_env,
    value,
)

CLIENTS = ("raw", "ours", "opc", "httpx")
NAME = "GetInvoiceById"
LABELS = {"raw": "raw aiohttp", "ours": "ours", "opc": "openapi-python-client", "httpx": "httpx"}
Get = Callable[[Any], Awaitable[Any]]
COUNTED_CALLS = 200  # calls of a counted (callgrind) run, after the same warm-up as timed runs


def generate_opc(tmp: Path) -> Path:
    """openapi-python-client's client for the spec, as the package `amili_opc` under `tmp`."""
    out = tmp / "amili_opc"
    cmd = ["openapi-python-client", "generate", "--path", str(nullable_spec(tmp))]
    cmd += ["--output-path", str(out), "--meta", "none"]
    cmd[0] = str(Path(sys.executable).parent / cmd[0])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=tool_env(), check=False)
    if proc.returncode != 0 or not (out / "client.py").exists():
        raise RuntimeError(f"openapi-python-client failed on our spec:\n{proc.stdout}{proc.stderr}")
    return tmp


@asynccontextmanager
async def client(kind: str, params: dict[str, Any]) -> AsyncIterator[tuple[Get, list[Any]]]:
    """`get(invoice id)` of the client `kind`, and the ids in the form it takes them."""
    base, org, token, ids = params["base_url"], params["org"], params["token"], params["ids"]
    if kind == "ours":
        from amili_async import AmiliClient

        async with AmiliClient(token=token, base_url=base) as amili:
            yield (lambda invoice_id: amili.invoices.get(org, invoice_id)), ids
    elif kind == "raw":
        import aiohttp
        import orjson

        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        async with aiohttp.ClientSession() as session:

            async def get_raw(invoice_id: str) -> Any:
                async with session.get(
                    f"{base}/orgs/{org}/invoices/{invoice_id}", headers=headers
                ) as r:
                    if r.status != 200:
                        raise RuntimeError(f"status {r.status}")
                    return orjson.loads(await r.read())["data"]

            yield get_raw, ids
    elif kind == "httpx":
        import httpx

        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        async with httpx.AsyncClient(base_url=base, headers=headers) as session:

            async def get_httpx(invoice_id: str) -> Any:
                r = await session.get(f"/orgs/{org}/invoices/{invoice_id}")
                r.raise_for_status()
                return r.json()["data"]

            yield get_httpx, ids
    else:
        from uuid import UUID

        sys.path.insert(0, params["opc"])
        from amili_opc import AuthenticatedClient  # type: ignore[import-not-found]
        from amili_opc.api.invoice import get_invoice_by_id  # type: ignore[import-not-found]
        from amili_opc.models import InvoiceEnvelope  # type: ignore[import-not-found]

        org_id = UUID(org)
        async with AuthenticatedClient(base_url=base, token=token) as opc:

            async def get_opc(invoice_id: UUID) -> Any:
                answer = await get_invoice_by_id.asyncio(org_id, invoice_id, client=opc)
                if not isinstance(answer, InvoiceEnvelope):
                    raise RuntimeError(f"unexpected answer {answer!r}")
                return answer.data

            yield get_opc, [UUID(i) for i in ids]


async def load(get: Get, ids: list[Any], concurrency: int) -> None:
    """Call `get` once per id, `concurrency` calls in flight."""
    pending = iter(ids)

    async def worker() -> None:
        for invoice_id in pending:
            await get(invoice_id)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def calls(params: dict[str, Any]) -> dict[str, Any]:
    calls, warmup, concurrency = params["calls"], params["warmup"], params["concurrency"]
    cpu, wall = [], []
    async with client(params["kind"], params) as (get, ids):
        await load(get, ids[:warmup], concurrency)
        if "loops" in params:  # counted under callgrind: `loops` calls after the warm-up
            await load(get, ids[warmup : warmup + params["loops"]], concurrency)
            return {}
        for rep in range(params["repeat"]):
            batch = ids[warmup + rep * calls : warmup + (rep + 1) * calls]
            assert len(batch) == calls
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            await load(get, batch, concurrency)
            cpu.append((time.process_time() - cpu_start) / calls)
            wall.append((time.perf_counter() - wall_start) / calls)
    return {"cpu": cpu, "wall": wall}


def measure(params: dict[str, Any]) -> dict[str, Any]:
    ids = json.loads(Path(params["ids"]).read_text(encoding="utf-8"))
    return asyncio.run(calls({**params, "ids": ids}))


def rows(quick: bool) -> list[Row]:
    rounds, repeat, count, warmup = (1, 2, 300, 100) if quick else (2, 2, 2000, 200)
    cpu: dict[tuple[int, str], list[float]] = {}
    wall: dict[tuple[int, str], list[float]] = {}
    needed = warmup + repeat * count
    with tempfile.TemporaryDirectory() as tmp, sandbox(needed) as sb:
        token = sb.token()
        params = {
            "base_url": sb.base_url,
            "org": sb.org,
            "token": token,
            "opc": str(generate_opc(Path(tmp))),
        }
        (Path(tmp) / "ids.json").write_text(
            json.dumps(sb.invoice_ids(token, needed)), encoding="utf-8"
        )
        params["ids"] = f"{tmp}/ids.json"
        for concurrency in (1, 32):
            for _ in range(rounds):
                for kind in CLIENTS:
                    out = run_child(
                        "calls.py",
                        kind=kind,
                        concurrency=concurrency,
                        calls=count,
                        warmup=warmup,
                        repeat=repeat,
                        **params,
                    )
                    cpu.setdefault((concurrency, kind), []).extend(out["cpu"])
                    wall.setdefault((concurrency, kind), []).extend(out["wall"])
        for _ in range(rounds):  # many in flight: ours and the floor only
            for kind in ("raw", "ours"):
                out = run_child(
                    "calls.py",
                    kind=kind,
                    concurrency=256,
                    calls=count,
                    warmup=warmup,
                    repeat=repeat,
                    **params,
                )
                cpu.setdefault((256, kind), []).extend(out["cpu"])
        counted = {
            (concurrency, kind): instructions(
                "calls.py",
                COUNTED_CALLS,
                kind=kind,
                concurrency=concurrency,
                calls=0,
                warmup=warmup,
                repeat=0,
                **params,
            )
            for concurrency in ((1, 32) if has_valgrind() else ())
            for kind in ("raw", "ours")
        }
    instruction_rows = [
        row
        for concurrency in (1, 32)
        if counted
        for row in (
            ratio(
                f"{NAME} instructions/call c={concurrency}: ours / raw aiohttp",
                "<=",
                1.2,
                [counted[concurrency, "ours"]],
                [counted[concurrency, "raw"]],
            ),
            *(
                value(
                    f"{NAME} instructions/call c={concurrency}: {LABELS[k]}",
                    None,
                    0,
                    [counted[concurrency, k]],
                    "k",
                    scale=1e-3,
                )
                for k in ("raw", "ours")
            ),
        )
    ]
    return [
        *instruction_rows,
        ratio(
            f"{NAME} client CPU/call c=256: ours / raw aiohttp",
            "<=",
            1.5,
            cpu[256, "ours"],
            cpu[256, "raw"],
        ),
        value(f"{NAME} client CPU/call c=256: ours", None, 0, cpu[256, "ours"], "µs", scale=1e6),
        value(
            f"{NAME} client CPU/call c=256: raw aiohttp", None, 0, cpu[256, "raw"], "µs", scale=1e6
        ),
        *cpu_rows(1, 1.10, cpu),
        *cpu_rows(32, 1.15, cpu),
        *(
            ratio(
                f"{NAME} throughput c=32: ours / {LABELS[k]}",
                ">=",
                8.0,
                wall[32, k],
                wall[32, "ours"],
            )
            for k in ("opc", "httpx")
        ),
        *(rate(f"{NAME} throughput c=32: {LABELS[k]}", 1, wall[32, k], "req/s") for k in CLIENTS),
    ]


def cpu_rows(concurrency: int, goal: float, cpu: dict[tuple[int, str], list[float]]) -> list[Row]:
    """Client CPU per call at one concurrency: the target row, then figures for information."""
    name = f"{NAME} client CPU/call c={concurrency}"
    ours, raw = cpu[concurrency, "ours"], cpu[concurrency, "raw"]
    return [
        ratio(f"{name}: ours / raw aiohttp", "<=", goal, ours, raw),
        value(f"{name}: ours", None, 0, ours, "µs", scale=1e6),
        value(f"{name}: raw aiohttp", None, 0, raw, "µs", scale=1e6),
        ratio(f"{name}: openapi-python-client / ours", None, 0, cpu[concurrency, "opc"], ours),
        ratio(f"{name}: httpx / ours", None, 0, cpu[concurrency, "httpx"], ours),
    ]


if __name__ == "__main__":
    child_main(measure)
