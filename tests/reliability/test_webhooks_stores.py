"""Shared de-duplication stores across restarts and replicas (issue 20, item 6).

What it proves, against a real PostgreSQL server this module starts (`initdb` + `pg_ctl` into a
temporary directory, loopback only, stopped at the end; skipped with the reason where the
binaries are missing) and real SQLite files:

- both stores implement the `DedupeStore` states: claimed -> busy (until the lease expires,
  injected clock) -> done (until the ttl expires); a release frees the claim, but a release by a
  holder whose lease was taken over does not free the new holder's claim;
- two stores racing on the same keys (two replicas) claim each key exactly once;
- two `webhooks listen` processes on one database, 1,000 deliveries each sent twice to random
  replicas (with retries on 503, as a sender does), one replica restarted mid-run: every event
  is printed (the callback) exactly once;
- `webhooks listen --store PATH` (SQLite) does not handle a delivery again after a restart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest

from amili_async import webhooks

from ..export._interrupt import BACKGROUND_CLI
from .conftest import CHILD_TIMEOUT, wait_until

SECRET = "whsec-replicas"
STARTS = 3  # attempts to start PostgreSQL on a free port (another process may take it first)


# --------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unprivileged() -> list[str] | None:
    """The command prefix that runs initdb/pg_ctl as a non-root user (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return [runuser, "-u", name, "--"] if runuser else None
    return None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 (its DSN), in a temporary directory, for this module."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not on PATH (needed for a real server)")
    run_as = _unprivileged()
    if run_as is None:
        pytest.skip("running as root without runuser and a non-root user: initdb refuses root")
    root = Path(tempfile.mkdtemp(prefix="amili-pg-"))
    if run_as:
        owner = pwd.getpwnam(run_as[2])
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data = root / "data"
    try:
        subprocess.run(
            # No fsync: the data dies with the test; it is the SQL that is under test.
            [*run_as, initdb, "-D", data, "-U", "amili", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )
        for attempt in range(STARTS):
            port = _free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
            started = subprocess.run(
                [*run_as, pg_ctl, "-D", data, "-l", root / "log", "-w", "-o", options, "start"],
                capture_output=True,
            )
            if started.returncode == 0:
                break
            assert attempt < STARTS - 1, (root / "log").read_text()
        yield f"postgresql://amili@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*run_as, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True
            )
        shutil.rmtree(root, ignore_errors=True)


StoreFactory = Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Build stores of one kind on one database (a fresh table per test)."""
    stores: list[Any] = []
    table = f"t_{uuid.uuid4().hex[:12]}"

    def make(**kwargs: Any) -> Any:
        if request.param == "sqlite":
            store: Any = webhooks.SqliteDedupeStore(tmp_path / "dedupe.db", table=table, **kwargs)
        else:
            dsn = request.getfixturevalue("postgres")
            store = webhooks.PostgresDedupeStore(dsn, table=table, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


# --------------------------------------------------------------------------- store semantics


async def test_claims_lease_complete_release_and_expire(make_store: StoreFactory) -> None:
    now = [1_700_000_000.0]
    store = make_store(lease=300, ttl=3600, clock=lambda: now[0])
    other = make_store(lease=300, ttl=3600, clock=lambda: now[0])  # another replica
    assert isinstance(store, webhooks.DedupeStore)
    assert await store.claim("a") == "claimed"
    assert await other.claim("a") == "busy"
    now[0] += 301  # the holder hung: its lease expired, another replica takes over
    assert await other.claim("a") == "claimed"
    await store.release("a")  # the late holder's release must not free the new claim
    assert await store.claim("a") == "busy"
    await other.complete("a")
    assert await store.claim("a") == "done"
    assert await other.claim("b") == "claimed"
    await other.release("b")
    assert await store.claim("b") == "claimed"
    now[0] += 3601  # past the ttl: handled keys are forgotten (and purged)
    assert await other.claim("a") == "claimed"


async def test_two_replicas_racing_claim_each_key_once(make_store: StoreFactory) -> None:
    replicas = [make_store(), make_store()]
    keys = [f"event:{n}" for n in range(200)]
    claims = await asyncio.gather(
        *(replica.claim(key) for key in keys for replica in replicas for _ in range(2))
    )
    per_key = collections.Counter(
        key
        for key, claim in zip((k for k in keys for _ in range(4)), claims, strict=True)
        if claim == "claimed"
    )
    assert per_key == dict.fromkeys(keys, 1)


def test_table_names_are_plain_identifiers() -> None:
    with pytest.raises(ValueError, match="identifier"):
        webhooks.SqliteDedupeStore(":memory:", table="x; DROP TABLE y")


# --------------------------------------------------------------------------- real receivers


def case_body(event_id: str) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "eventType": "CASE",
            "source": "COLLECTION",
            "timeStamp": "2025-08-15T11:42:00Z",
            "data": {"orgId": "org-1", "caseId": event_id, "status": "OPEN"},
        }
    )


def headers(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "IdempotencyKey": str(uuid.uuid4()),  # a fresh one per send: it must not matter
        "X-Webhook-Signature": webhooks.compute_signature(body, SECRET),
    }


class Replicas:
    """`webhooks listen` processes on one store, each printing its callbacks to its own file."""

    def __init__(self, store: str | Path, out: Path) -> None:
        self.store = str(store)
        self.out = out
        self.live: dict[str, str] = {}  # replica -> URL, while it takes deliveries
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.idle = asyncio.Condition()
        self.started = 0

    async def start(self, name: str) -> None:
        self.started += 1
        stdout = self.out / f"{name}-{self.started}.jsonl"
        stderr = self.out / f"{name}-{self.started}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *BACKGROUND_CLI,
                *("webhooks", "listen", "--port", "0"),
                *("--store", self.store, "--secret", SECRET),
                stdout=out,
                stderr=err,
            )
        self.procs[name] = proc
        assert await wait_until(lambda: b"listening" in stderr.read_bytes(), proc=proc), (
            stderr.read_text()
        )
        self.live[name] = stderr.read_text().split(" on ", 1)[1].strip()

    async def stop(self, name: str) -> int:
        """Take `name` out of rotation, let its requests finish, Ctrl-C it."""
        del self.live[name]
        async with self.idle:
            await self.idle.wait_for(lambda: self.in_flight[name] == 0)
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGINT)
        return await proc.wait()

    async def close(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.kill()
            await proc.wait()

    def callbacks(self) -> collections.Counter[str]:
        """How many times each event id was printed, over every process."""
        lines = b"".join(path.read_bytes() for path in self.out.glob("*.jsonl")).splitlines()
        return collections.Counter(orjson.loads(line)["id"] for line in lines)


def lines_per_process(out: Path) -> list[int]:
    """Callbacks printed by each process, in start order."""
    return [path.read_bytes().count(b"\n") for path in sorted(out.glob("*.jsonl"))]


class Sender:
    """Amili's side: deliver each body until a 2xx, to a random live replica per attempt."""

    def __init__(self, replicas: Replicas, session: aiohttp.ClientSession, seed: int) -> None:
        self.replicas = replicas
        self.session = session
        self.random = random.Random(seed)
        self.attempts = 0
        self.statuses: collections.Counter[int | str] = collections.Counter()
        self.delivered = 0

    async def deliver(self, body: bytes) -> None:
        replicas = self.replicas
        while True:
            name = self.random.choice(sorted(replicas.live))
            url = replicas.live[name]
            replicas.in_flight[name] += 1
            try:
                async with self.session.post(url, data=body, headers=headers(body)) as response:
                    status: int | str = response.status
            except aiohttp.ClientError as error:
                status = type(error).__name__
            finally:
                replicas.in_flight[name] -= 1
                async with replicas.idle:
                    replicas.idle.notify_all()
            self.attempts += 1
            self.statuses[status] += 1
            if status == 200:
                self.delivered += 1
                return


DELIVERIES = 1000
CONCURRENCY = 16  # deliveries in flight at once, so both copies of an event often overlap


async def test_two_replicas_on_postgres_handle_every_event_exactly_once(
    postgres: str, tmp_path: Path
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(DELIVERIES)]
    bodies = [case_body(event_id) for event_id in ids] * 2
    random.Random(20).shuffle(bodies)
    replicas = Replicas(postgres, tmp_path)
    began = time.monotonic()
    try:
        await asyncio.gather(replicas.start("a"), replicas.start("b"))
        async with aiohttp.ClientSession() as session:
            sender = Sender(replicas, session, seed=6)
            gate = asyncio.Semaphore(CONCURRENCY)
            restarted = asyncio.Event()
            exits: list[int] = []

            async def restart_mid_run() -> None:
                exits.append(await replicas.stop("a"))
                await replicas.start("a")
                restarted.set()

            async def one(index: int, body: bytes) -> None:
                async with gate:
                    await sender.deliver(body)
                if index == DELIVERIES:  # halfway: restart a while b keeps taking deliveries
                    restart = asyncio.create_task(restart_mid_run())
                    tasks.append(restart)

            tasks: list[asyncio.Task[None]] = []
            async with asyncio.timeout(CHILD_TIMEOUT):
                await asyncio.gather(*(one(n, body) for n, body in enumerate(bodies, 1)))
                await asyncio.gather(*tasks)
        assert restarted.is_set()
        assert exits == [130]  # Ctrl-C: a clean stop
    finally:
        await replicas.close()
    elapsed = time.monotonic() - began
    callbacks = replicas.callbacks()
    assert set(callbacks) == set(ids)
    assert set(callbacks.values()) == {1}
    table = webhooks.PostgresDedupeStore(postgres).table  # the default, which listen uses
    connection = await asyncpg.connect(postgres)
    try:
        handled = await connection.fetchval(f"SELECT count(*) FROM {table} WHERE done")
    finally:
        await connection.close()
    assert handled == DELIVERIES
    print(
        f"\nreplicas: {DELIVERIES} events, {len(bodies)} deliveries ({DELIVERIES} duplicates), "
        f"{sender.attempts} HTTP attempts {dict(sender.statuses)}, "
        f"{sum(callbacks.values())} callbacks, {replicas.started} process starts, "
        f"{elapsed:.1f} s"
    )


async def test_listen_with_an_sqlite_store_skips_what_it_handled_before_a_restart(
    tmp_path: Path,
) -> None:
    first = [case_body(str(uuid.uuid4())) for _ in range(50)]
    second = [case_body(str(uuid.uuid4())) for _ in range(50)]
    replicas = Replicas(tmp_path / "webhooks.db", tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            sender = Sender(replicas, session, seed=1)
            await replicas.start("only")
            for body in first:
                await sender.deliver(body)
            assert await replicas.stop("only") == 130
            await replicas.start("only")
            for body in first + second:  # Amili redelivers the first 50 after the restart
                await sender.deliver(body)
    finally:
        await replicas.close()
    assert lines_per_process(tmp_path) == [50, 50]
    assert replicas.callbacks() == dict.fromkeys(
        (orjson.loads(body)["id"] for body in first + second), 1
    )
