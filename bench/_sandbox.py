"""The benchmarks' server process: a SandboxServer on a free port, counting the requests it gets.

Prints one JSON line (URLs, credentials, organisation) once it listens, then serves until it
is terminated. `GET /bench/stats` answers the counts: {"token": POST /token, "api": the rest,
"refused": 429s of the per-client rate limit (with --rate-limit)}.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

from amili_async.sandbox import FaultConfig, SandboxConfig, SandboxServer

STATS_PATH = "/bench/stats"


async def serve(invoices: int, faults: str | None, rate_limit: float | None) -> None:
    counts = {"token": 0, "api": 0}

    @web.middleware
    async def count(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        if request.path == STATS_PATH:
            return await stats(request)  # ahead of the faults and the rate limit
        counts["token" if request.path == "/token" else "api"] += 1
        return await handler(request)

    async def stats(request: web.Request) -> web.Response:
        throttle = server.throttle
        return web.json_response({**counts, "refused": throttle.refused if throttle else 0})

    config = SandboxConfig(
        invoices=invoices,
        faults=FaultConfig.parse(faults) if faults else None,
        rate_limit=rate_limit,
        batch_delay=0,
    )
    server = SandboxServer(config)
    server.app.middlewares.insert(0, count)  # outermost: sees every request, faulted or not
    async with server:
        info = {
            "base_url": server.base_url,
            "token_url": server.token_url,
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "org": server.default_org_id,
        }
        print(json.dumps(info), flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, required=True)
    parser.add_argument("--faults", help="a FaultConfig spec, e.g. latency=20ms")
    parser.add_argument("--rate-limit", type=float, help="requests per second per client")
    args = parser.parse_args()
    asyncio.run(serve(args.invoices, args.faults, args.rate_limit))


if __name__ == "__main__":
    main()
