"""Run a multi-organisation sandbox in this process; print one JSON line once it serves.

`python -m tests.export._sandbox_child ORGS INVOICES`: the line gives the addresses, the
credentials and each organisation's invoice count from the sandbox's own state.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from amili_async.sandbox import SandboxConfig, SandboxServer, make_orgs, serve_forever


def _ready(server: SandboxServer) -> None:
    counts = {org_id: state.invoice_count for org_id, state in server.state.orgs.items()}
    line = {
        "base_url": server.base_url,
        "token_url": server.token_url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "counts": {k: v for k, v in counts.items() if v},
    }
    sys.stdout.write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()


def main() -> None:
    orgs, invoices = int(sys.argv[1]), int(sys.argv[2])
    config = SandboxConfig(orgs=make_orgs(orgs), seeded_orgs=orgs, invoices=invoices)
    asyncio.run(serve_forever(config, ready=_ready))


if __name__ == "__main__":
    main()
