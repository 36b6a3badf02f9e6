"""Token single-flight: 1,000 cold concurrent calls of a client-credentials client.

Each run is a fresh client process (no token yet) that starts 1,000 `invoices.get` calls at
once. The token requests are counted on both sides: by the sandbox (POST /token, its own
process) and by an aiohttp trace in the client. Target: exactly 1 in every run.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, child_main, run_child, sandbox, value

CALLS = 1000


async def cold_burst(params: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    from amili_async import AmiliClient

    seen = {"token": 0, "api": 0}

    async def on_request_start(session: Any, context: Any, request: Any) -> None:
        seen["token" if request.url.path == "/token" else "api"] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    amili = AmiliClient(
        client_id=params["client_id"],
        client_secret=params["client_secret"],
        base_url=params["base_url"],
        token_url=params["token_url"],
        trace_configs=[trace],
    )
    async with amili:
        start = time.perf_counter()
        found = await asyncio.gather(*(amili.invoices.get(params["org"], i) for i in params["ids"]))
        seconds = time.perf_counter() - start
    assert len({invoice.id for invoice in found}) == len(params["ids"])
    return {"trace_token": seen["token"], "trace_api": seen["api"], "seconds": seconds}


def measure(params: dict[str, Any]) -> dict[str, Any]:
    ids = json.loads(Path(params["ids"]).read_text(encoding="utf-8"))
    return asyncio.run(cold_burst({**params, "ids": ids}))


def rows(quick: bool) -> list[Row]:
    runs = 2 if quick else 3
    server_counts: list[float] = []
    client_counts: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, sandbox(CALLS) as sb:
        ids_file = Path(tmp) / "ids.json"
        ids_file.write_text(json.dumps(sb.invoice_ids(sb.token(), CALLS)), encoding="utf-8")
        for _ in range(runs):
            before = sb.stats()["token"]
            out = run_child(
                "tokens.py",
                base_url=sb.base_url,
                token_url=sb.token_url,
                client_id=sb.client_id,
                client_secret=sb.client_secret,
                org=sb.org,
                ids=str(ids_file),
            )
            server_counts.append(sb.stats()["token"] - before)
            client_counts.append(out["trace_token"])
            assert out["trace_api"] == CALLS, out
    what = f"token requests for {CALLS:,} cold concurrent calls"
    return [
        value(f"{what} (sandbox count)", "==", 1, server_counts, "", worst=max),
        value(f"{what} (client aiohttp trace)", "==", 1, client_counts, "", worst=max),
    ]


if __name__ == "__main__":
    child_main(measure)
