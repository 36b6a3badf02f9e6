"""Exports survive crashes: `amili-async export` killed at random points, and the SDK's own resume.

What it proves, on 50,000 seeded invoices with about 10% of the requests failing (every fault
kind the sandbox injects):

- a CLI export SIGKILLed several times and resumed with `--resume` each time ends with every
  invoice in the file exactly once, sequentially (in listing order) and partitioned (one unit,
  with its own checkpoint, per part);
- at every kill, no checkpoint vouches for more than its stage holds: the stage's first `size`
  bytes are exactly `rows` whole records (data before checkpoint);
- a stage whose tail was lost (shorter than its checkpoint's `size`) is refused on `--resume`
  with a one-line error naming it, and left exactly as it was (never padded, never cut);
- the SDK's listing resumes from `error.resume_token` after each failure with nothing lost or
  repeated.

Kill points are chosen with a seeded RNG and reached by watching the checkpoint file, never by
timing.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from amili_async import AmiliError, APIConnectionError, APIStatusError
from amili_async.sandbox import SandboxConfig, SandboxServer

from ..export._state import checkpoints, exported_rows, stage_files, work_dir
from .conftest import (
    CHAOS,
    assert_one_line_error,
    cli_env,
    connect,
    kill,
    run_cli,
    seeded_ids,
    start_cli,
    wait_until,
)

INVOICES = 50_000
PAGE = 1000
WINDOW = ("--from", "2024-01-01T00:00:00Z", "--to", "2024-01-21T00:00:00Z")  # all seeded ones
PARTS = 4


@pytest.fixture
def amili_sandbox_config() -> SandboxConfig:
    return SandboxConfig(invoices=INVOICES, seed=9)


def _export_args(org: str, out: Path, *extra: str) -> tuple[str | Path, ...]:
    return (
        "export", "invoices", "--org", org, "--out", out, "--page-size", str(PAGE),
        "--no-progress", *extra,
    )  # fmt: skip


def _check_vouched_prefixes(out: Path) -> dict[str, dict[str, object]]:
    """Each checkpoint vouches only for data on disk: its unit's stage holds `size` bytes of
    `rows` whole records. Returns the checkpoints, by unit id."""
    assert not out.exists()  # nothing is published before every unit is done
    states = checkpoints(out)
    for unit_id, state in states.items():
        data = (work_dir(out) / ".partial" / f"{unit_id}.jsonl.part").read_bytes()
        size, rows = state["size"], state["rows"]
        assert len(data) >= size, "the checkpoint vouches for bytes the stage does not hold"
        vouched = data[:size]
        assert vouched.endswith(b"\n") or not vouched
        records = [orjson.loads(line) for line in vouched.splitlines()]
        assert len(records) == rows
        assert len({r["id"] for r in records}) == rows
    return states


async def _export_with_kills(
    server: SandboxServer, args: tuple[str | Path, ...], out: Path, thresholds: list[int]
) -> list[dict[str, dict[str, object]]]:
    """Run the export, SIGKILL it as soon as its checkpoints pass each threshold (resuming
    after the first kill), then finish it with --resume. Returns the checkpoints of each kill."""
    env = cli_env(server)
    states: list[dict[str, dict[str, object]]] = []
    for number, threshold in enumerate(thresholds):
        resume = ("--resume",) if number else ()
        proc = await start_cli(*args, *resume, env=env)
        try:
            reached = await wait_until(lambda t=threshold: exported_rows(out) >= t, proc=proc)
        finally:
            status = await kill(proc)
        assert reached, f"the export ended (exit {status}) before it reached {threshold:,}"
        assert status == -9, f"the export ended by itself (exit {status}) instead of being killed"
        states.append(_check_vouched_prefixes(out))
        assert threshold <= exported_rows(out) < INVOICES
        if number == 0:
            with stage_files(out)[0].open("ab") as stream:  # what a kill mid-page leaves
                stream.write(b'{"id":"half-written-invoi')

    run = await run_cli(*args, "--resume", env=env)

    assert run.code == 0, run.stderr
    assert f"exported {INVOICES:,} invoices" in run.stdout
    assert "resumed at" in run.stdout
    assert not work_dir(out).exists()  # complete: the checkpoints are removed
    assert len(_ids(out)) == INVOICES  # whole records only, no cut page left
    return states


def _thresholds(seed: int) -> list[int]:
    """Three kill points at seeded random counts, far enough apart that each run progresses."""
    rng = random.Random(seed)
    return [
        rng.randrange(2_000, 12_000),
        rng.randrange(18_000, 28_000),
        rng.randrange(34_000, 44_000),
    ]


def _ids(out: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()]


async def test_sequential_export_killed_three_times_has_every_invoice_once(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "invoices.jsonl"
    amili_sandbox.set_faults(CHAOS)

    states = await _export_with_kills(
        amili_sandbox, _export_args(amili_sandbox.default_org_id, out), out, _thresholds(1)
    )

    assert len(states) == 3
    assert _ids(out) == seeded_ids(amili_sandbox)  # all 50,000, once each, in listing order


async def test_partitioned_export_killed_three_times_has_every_invoice_once(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "invoices.jsonl"
    amili_sandbox.set_faults(CHAOS)
    args = _export_args(amili_sandbox.default_org_id, out, "--partitions", str(PARTS), *WINDOW)

    states = await _export_with_kills(amili_sandbox, args, out, _thresholds(2))

    for state in states:
        assert 0 < len(state) <= PARTS  # one checkpoint per unfinished part
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == INVOICES
    assert set(ids) == set(seeded_ids(amili_sandbox))


async def test_resume_refuses_a_file_whose_tail_was_lost(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "invoices.jsonl"
    env = cli_env(amili_sandbox)
    args = _export_args(amili_sandbox.default_org_id, out)
    proc = await start_cli(*args, env=env)
    try:
        assert await wait_until(lambda: exported_rows(out) >= 5_000, proc=proc)
    finally:
        assert await kill(proc) == -9
    ((unit_id, state),) = _check_vouched_prefixes(out).items()
    size = state["size"]
    assert isinstance(size, int)
    checkpoint = work_dir(out) / ".partial" / f"{unit_id}.checkpoint.json"
    (stage,) = stage_files(out)
    saved_checkpoint = checkpoint.read_bytes()

    for kept in (size - 1, size // 2, 0):  # the lost tail: one byte, half the file, all of it
        with stage.open("r+b") as stream:
            stream.truncate(kept)
        damaged = stage.read_bytes()

        run = await run_cli(*args, "--resume", env=env)

        line = assert_one_line_error(run)
        assert "was lost" in line
        assert f"{kept:,} bytes" in line
        assert f"{size:,}" in line
        assert str(stage) in line  # the file it is about
        assert "--force" in line  # and what to do
        assert stage.read_bytes() == damaged  # neither padded nor cut
        assert checkpoint.read_bytes() == saved_checkpoint
        assert not out.exists()


async def test_resume_of_a_finished_export_touches_nothing(
    amili_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A finished export removed its checkpoint: --resume has nothing to vouch for and
    neither pads nor cuts the file (even one whose tail was lost since)."""
    out = tmp_path / "closed.jsonl"
    env = cli_env(amili_sandbox)
    args = _export_args(amili_sandbox.default_org_id, out, "--status", "CLOSED")
    first = await run_cli(*args, env=env)
    assert first.code == 0, first.stderr
    whole = out.read_bytes()
    with out.open("r+b") as stream:
        stream.truncate(len(whole) // 2)

    run = await run_cli(*args, "--resume", env=env)

    assert out.read_bytes() == whole[: len(whole) // 2]  # never padded
    assert "nothing to resume" in assert_one_line_error(run)


async def test_sdk_listing_resumes_from_each_failure_with_nothing_lost_or_repeated(
    amili_sandbox: SandboxServer,
) -> None:
    org = amili_sandbox.default_org_id
    amili_sandbox.set_faults(CHAOS)
    ids: list[str] = []
    failures: list[AmiliError] = []
    token: str | None = None

    # max_retries=0: every fault surfaces, so every one of them goes through the resume path.
    async with connect(amili_sandbox, max_retries=0) as client:
        while True:
            pager = client.invoices.list(org, page_size=PAGE, page_token=token)
            try:
                async for page in pager.pages():
                    ids.extend(invoice.id for invoice in page.items)
            except AmiliError as error:
                failures.append(error)
                assert len(failures) < 60, "a fault rate of 10% cannot fail this often"
                token = error.resume_token
                continue
            break

    assert ids == seeded_ids(amili_sandbox)  # 50,000, once each, in order
    assert failures, "the faults must have interrupted the listing"
    for failure in failures:
        assert isinstance(failure, APIConnectionError | APIStatusError), repr(failure)
        if isinstance(failure, APIStatusError):
            assert failure.status_code in (429, 500, 502, 503)
    assert any(failure.resume_token for failure in failures), "a failure past the first page"
