"""Shared fixtures of the export suite: a multi-organisation sandbox in another process.

The sandbox runs in a child process so that Dask workers (other processes) and a blocking
`distributed.Client` in the test can all reach it while it keeps serving.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from amili_async._time import format_datetime
from amili_async.export import ClientSettings

ORGS = 3
INVOICES = 20_000
PARTITIONS = 8
# Seeded createdAt runs from 2024-01-02T07:00Z, one invoice every 30 s: 20,000 end before
# 2024-01-09, so this window holds every seeded invoice and each unit about 2,500.
FROM = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
TO = dt.datetime(2024, 1, 10, tzinfo=dt.UTC)
LOADED_MACHINE = {
    # A worker the test kills on purpose counts as one failure of its task: leave room for a
    # loaded machine's missed heartbeats on top, so no unit is given up as "KilledWorker".
    "distributed.scheduler.allowed-failures": 10,
    # Connecting and talking to a worker process that is starting on a busy 2-core machine.
    "distributed.comm.timeouts.connect": "60s",
    "distributed.comm.timeouts.tcp": "120s",
}
"""Dask settings of the test cluster: what a shared, loaded test machine needs."""
STARTUP_TIMEOUT = 60.0
"""Seconds the sandbox child may take to seed and bind (it reports on stdout)."""


@attrs.frozen
class RemoteSandbox:
    """A sandbox in a child process: where it listens and what it holds."""

    settings: ClientSettings
    counts: dict[str, int]
    """Invoices per seeded organisation, from the sandbox's own state."""

    @property
    def org_ids(self) -> list[str]:
        return list(self.counts)

    def env(self) -> dict[str, str]:
        """Environment for a CLI child pointed at this sandbox."""
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("AMILI_")}
        assert self.settings.base_url
        assert self.settings.token_url
        env.update(
            AMILI_BASE_URL=self.settings.base_url,
            AMILI_TOKEN_URL=self.settings.token_url,
            AMILI_CLIENT_ID=self.settings.client_id or "",
            AMILI_CLIENT_SECRET=self.settings.client_secret or "",
        )
        return env


@pytest.fixture(scope="session")
def remote_sandbox() -> Iterator[RemoteSandbox]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.export._sandbox_child", str(ORGS), str(INVOICES)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the child serves (or dies: "")
        assert line, "the sandbox child ended before it served"
        info = json.loads(line)
        yield RemoteSandbox(
            settings=ClientSettings(
                base_url=info["base_url"],
                token_url=info["token_url"],
                client_id=info["client_id"],
                client_secret=info["client_secret"],
            ),
            counts=info["counts"],
        )
    finally:
        proc.terminate()
        proc.wait(STARTUP_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON Lines file with exact decimals."""
    with path.open(encoding="utf-8") as stream:
        return [json.loads(line, parse_float=Decimal) for line in stream if line.strip()]


def wire_values(value: Any) -> Any:
    """A row as comparable values: absent and null alike, date-times as the SDK writes them
    (UTC, `Z`), dates as ISO text; decimals stay Decimal and compare exactly, to the cent."""
    if isinstance(value, dict):
        return {k: wire_values(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [wire_values(v) for v in value]
    if isinstance(value, dt.datetime):
        assert value.utcoffset() == dt.timedelta(0), "timestamps must be UTC"
        return format_datetime(value.astimezone(dt.UTC))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        raise AssertionError(f"a float in an export: {value!r}")
    return value


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A Dask LocalCluster of two worker processes (two threads each) and its client."""
    distributed = pytest.importorskip("distributed")
    import dask

    with (
        dask.config.set(LOADED_MACHINE),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            # Not None: the scheduler's HTTP server would still bind its default port 8787 (and
            # warn, an error here, when another run holds it). Port 0 is a free one.
            dashboard_address="127.0.0.1:0",
            worker_dashboard_address=None,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client
