"""Webhooks: verified events per server CPU-second, the SDK's `webhook_handler` against a bare
aiohttp handler doing HMAC + orjson.

Each handler runs in its own fresh server process (aiohttp on loopback, port 0); the bench
process sends both the same N signed deliveries (the four documented events, each with its
own id, organisation, batch, case or settlement, timestamp), 16 in flight over keep-alive
connections. The server's own CPU (`time.process_time()`, from the first delivery to the
last) over N gives its cost per event:

- bare: read the body, HMAC-SHA256 of it compared in constant time, `orjson.loads`, the
  callback, 200 (no de-duplication, no typed events, no timeouts);
- sdk: `webhook_handler(on_event, secret=...)` with its defaults (body limit and timeout,
  signature, typed event, in-memory de-duplication, callback timeout).

Both callbacks count the event. Target: sdk >= 0.85x bare's events per CPU-second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, rate, ratio, value

SECRET = b"whsec-bench-0123456789abcdef"
KINDS = ("bare", "sdk")
CONCURRENCY = 16  # deliveries in flight: a burst of batch results after a bulk write
_STATUSES = ("OPEN", "PAUSED", "CLOSED", "WITHDRAWN")
_CASE_TYPES = ("COLLECTION_NOTICE", "PAYMENT_REMINDER", "NOTICE")


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def delivery(rng: random.Random, i: int) -> bytes:
    """One event body as the webhooks guide shows them, with values of its own."""
    stamp = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(10**7))
    head = {"id": _id(rng), "source": "COLLECTION", "timeStamp": stamp.isoformat()[:19] + "Z"}
    kind = i % 4
    if kind == 0:
        data: dict[str, Any] = {
            "batchId": _id(rng),
            "organizationId": _id(rng),
            "status": rng.choice(("SUCCESS", "PARTIAL", "FAILED")),
        }
        event = {"type": "BATCH_COMPLETED", **head, "data": data}
    elif kind == 1:
        data = {
            "settlementId": _id(rng),
            "organizationId": _id(rng),
            "settlementDate": stamp.date().isoformat(),
            "invoiceId": _id(rng),
            "invoiceNumber": f"INV-2025-{rng.randrange(10**6):06d}",
            "caseNumber": str(5_000_000 + rng.randrange(10**6)),
        }
        event = {"type": "SETTLEMENT_CREATED", **head, "data": data}
    else:
        data = {
            "orgId": _id(rng),
            "caseId": _id(rng),
            "caseNumber": str(5_000_000 + rng.randrange(10**6)),
            "type": rng.choice(_CASE_TYPES),
            "status": rng.choice(_STATUSES),
            "invoices": [_id(rng) for _ in range(rng.randrange(1, 4))],
        }
        if kind == 3:
            data["fields"] = rng.sample(["status", "type", "invoices", "caseNumber"], 2)
        event = {"eventType": "CASE" if kind == 2 else "CASE_UPDATED", **head, "data": data}
    return json.dumps(event).encode()


# ----------------------------------------------------------------------------- server
def serve(kind: str) -> None:
    """The server process: one handler at POST /hook, GET /cpu answers its CPU and count."""
    import orjson
    from aiohttp import web

    from amili_async.webhooks import webhook_handler

    seen = {"events": 0, "start": 0.0}

    def on_event(event: Any) -> None:
        seen["events"] += 1

    async def bare(request: web.Request) -> web.Response:
        body = await request.read()
        expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Webhook-Signature", ""), expected):
            return web.Response(status=401, text="invalid signature")
        on_event(orjson.loads(body))
        return web.Response(text="ok")

    async def cpu(request: web.Request) -> web.Response:
        used = time.process_time() - seen["start"]
        answer = {"events": seen["events"], "cpu": used}
        seen.update(events=0, start=time.process_time())  # the next burst counts from here
        return web.json_response(answer)

    app = web.Application()
    handler = bare if kind == "bare" else webhook_handler(on_event, secret=SECRET)
    app.router.add_post("/hook", handler)
    app.router.add_get("/cpu", cpu)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(json.dumps({"port": port}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# ----------------------------------------------------------------------------- sender
async def send(port: int, bodies: list[bytes]) -> dict[str, Any]:
    import aiohttp

    signed = [
        (body, {"X-Webhook-Signature": hmac.new(SECRET, body, hashlib.sha256).hexdigest()})
        for body in bodies
    ]
    url = f"http://127.0.0.1:{port}/hook"
    pending = iter(signed)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for body, headers in pending:
                async with session.post(url, data=body, headers=headers) as r:
                    if r.status != 200:
                        raise RuntimeError(f"delivery answered {r.status}")
                    await r.read()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        async with session.get(f"http://127.0.0.1:{port}/cpu") as r:
            result: dict[str, Any] = await r.json()
    return result


def measure(kind: str, bodies: list[bytes]) -> float:
    """Server CPU seconds per event of one fresh server process of `kind`."""
    cmd = [sys.executable, __file__, "--serve", kind]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = json.loads(child.stdout.readline())["port"]
        asyncio.run(send(port, bodies[:200]))  # warm-up: connections, compiled functions
        result = asyncio.run(send(port, bodies[200:]))
    finally:
        child.terminate()
        child.wait(timeout=30)
    if result["events"] != len(bodies) - 200:
        raise RuntimeError(f"{kind}: {result['events']} events of {len(bodies) - 200}")
    return float(result["cpu"]) / result["events"]


def rows(quick: bool) -> list[Row]:
    rounds, count = (2, 2000) if quick else (3, 8000)
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for round_ in range(rounds):
        rng = random.Random(round_)
        bodies = [delivery(rng, i) for i in range(count + 200)]
        for kind in KINDS:
            cpu[kind].append(measure(kind, bodies))
    name = "webhooks: verified events per server CPU-second"
    return [
        ratio(f"{name}: sdk / bare aiohttp", ">=", 0.85, cpu["bare"], cpu["sdk"]),
        rate(f"{name}: sdk", 1, cpu["sdk"], "events/s"),
        rate(f"{name}: bare aiohttp + HMAC + orjson", 1, cpu["bare"], "events/s"),
        value("webhooks: server CPU/event: sdk", None, 0, cpu["sdk"], "µs", scale=1e6),
        value("webhooks: server CPU/event: bare", None, 0, cpu["bare"], "µs", scale=1e6),
    ]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        sys.exit(f"{sys.argv[0]} is run by bench/run.py (make bench)")
