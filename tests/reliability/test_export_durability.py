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
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from amili_async import AmiliClient, AmiliError, APIConnectionError, APIStatusError
from amili_async._durable import UnsafePathError
from amili_async.export import (
    PARTIAL_DIR,
    ExportUnit,
    UnitResult,
    UnitStateError,
    plan_export,
    read_manifest,
    restart_unit,
    run_unit,
)
from amili_async.export._manifest import MANIFEST_DIR
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
        data = (work_dir(out) / PARTIAL_DIR / f"{unit_id}.jsonl.part").read_bytes()
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
    checkpoint = work_dir(out) / PARTIAL_DIR / f"{unit_id}.checkpoint.json"
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


# --------------------------------------------------------------------------- unit export, attacked
# Issue 20, items 7-10: predictable names, units made by hand, damaged or stale state. These run
# the unit engine (the one every export uses) against a small sandbox of their own.

SMALL = 300
SMALL_PAGE = 50


@pytest.fixture
async def small() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(SandboxConfig(invoices=SMALL, seed=4)) as server:
        yield server


class _Dies:
    """An `on_request` hook that fails the listing at request `at` (the process "dies")."""

    def __init__(self, at: int) -> None:
        self.count = 0
        self.at = at

    def __call__(self, info: object) -> None:
        self.count += 1
        if self.count == self.at:
            raise ConnectionAbortedError("injected: the process dies here")


def _unit_client(server: SandboxServer, hook: _Dies | None = None) -> AmiliClient:
    return AmiliClient(
        client_id=server.client_id,
        client_secret=server.client_secret,
        base_url=server.base_url,
        token_url=server.token_url,
        on_request=hook,
    )


async def _interrupted(server: SandboxServer, out: Path) -> ExportUnit:
    """A unit of the default org killed after three staged pages (its state left in `out`)."""
    (unit,) = plan_export([server.default_org_id])
    async with _unit_client(server, _Dies(at=4)) as client:
        with pytest.raises(ConnectionAbortedError):
            await run_unit(unit, out_dir=out, client=client, page_size=SMALL_PAGE)
    return unit


def _unit_paths(out: Path, unit: ExportUnit) -> dict[str, Path]:
    partial = out / PARTIAL_DIR
    return {
        "stage": partial / f"{unit.unit_id}.jsonl.part",
        "checkpoint": partial / f"{unit.unit_id}.checkpoint.json",
        "lock": partial / f"{unit.unit_id}.lock",
        "record": out / MANIFEST_DIR / f"{unit.unit_id}.json",
        "final": out / f"{unit.file_stem()}.jsonl",
    }


async def _run_whole(server: SandboxServer, unit: ExportUnit, out: Path) -> UnitResult:
    async with _unit_client(server) as client:
        return await run_unit(unit, out_dir=out, client=client, page_size=SMALL_PAGE)


def _assert_every_invoice_once(out: Path, result: UnitResult) -> None:
    ids = _ids(out / result.path)
    assert len(ids) == len(set(ids)) == result.rows == SMALL


@pytest.mark.parametrize("name", ["stage", "checkpoint", "lock", "record", "final"])
async def test_a_symlink_planted_at_a_predictable_name_is_never_written_through(
    small: SandboxServer, tmp_path: Path, name: str
) -> None:
    out = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"someone else's file\n")
    (unit,) = plan_export([small.default_org_id])
    path = _unit_paths(out, unit)[name]
    path.parent.mkdir(parents=True)
    path.symlink_to(victim)

    with pytest.raises(UnsafePathError, match="symbolic link"):
        await _run_whole(small, unit, out)

    assert victim.read_bytes() == b"someone else's file\n"
    if name == "record":  # a manifest with a planted link is not read either
        with pytest.raises(UnsafePathError):
            read_manifest(out)
    else:
        assert read_manifest(out) == []  # not counted as done

    restart_unit(out, unit)  # the recovery removes the link, never its target
    assert victim.read_bytes() == b"someone else's file\n"
    _assert_every_invoice_once(out, await _run_whole(small, unit, out))


async def test_a_symlinked_directory_inside_the_output_is_refused(
    small: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (unit,) = plan_export([small.default_org_id])
    out.mkdir(parents=True)
    (out / f"org={small.default_org_id}").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(UnsafePathError):
        await _run_whole(small, unit, out)
    with pytest.raises(UnsafePathError):  # nor does the recovery reach through it
        restart_unit(out, unit)

    assert list(elsewhere.iterdir()) == []


async def test_a_file_planted_at_the_final_name_is_not_counted_as_done(
    small: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (unit,) = plan_export([small.default_org_id])
    final = _unit_paths(out, unit)["final"]
    final.parent.mkdir(parents=True)
    final.write_bytes(b'{"id": "not ours"}\n')

    with pytest.raises(UnitStateError, match="no manifest record or checkpoint") as refused:
        await _run_whole(small, unit, out)
    assert refused.value.path == final
    assert read_manifest(out) == []

    restart_unit(out, unit)  # the documented recovery
    _assert_every_invoice_once(out, await _run_whole(small, unit, out))


async def test_a_published_file_changed_since_is_refused_by_its_record(
    small: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (unit,) = plan_export([small.default_org_id])
    result = await _run_whole(small, unit, out)
    final = out / result.path
    final.write_bytes(final.read_bytes().replace(b'"OPEN"', b'"PAID"', 1))  # same size

    with pytest.raises(UnitStateError, match="does not match its manifest record"):
        await _run_whole(small, unit, out)


@pytest.mark.parametrize(
    ("field", "refusal"),
    [
        ({"org_id": "../../escape"}, "not an organisation id"),
        ({"org_id": "a/b"}, "not an organisation id"),
        ({"org_id": ""}, "not an organisation id"),
        ({"resource": "../invoices"}, "resource must be one of"),
        ({"part": -1}, "part must be an integer >= 0"),
        ({"part": 3, "parts": 2}, "needs 0 <= part < parts"),
        ({"parts": "2"}, "parts must be an integer"),
        ({"filters": (("../x", "y"),)}, "unknown filter"),
    ],
)
def test_a_unit_made_by_hand_cannot_name_a_path_outside_its_directory(
    field: dict[str, object], refusal: str
) -> None:
    fields: dict[str, object] = {
        "org_id": "org-1", "resource": "invoices", "from_": None, "to": None,
        "filters": (), "part": 0, "parts": 1,
    }  # fmt: skip
    with pytest.raises(ValueError, match=refusal):
        ExportUnit(**{**fields, **field})  # type: ignore[arg-type]
    (good,) = plan_export(["org-1"])
    data = {**good.to_dict(), **field}
    with pytest.raises(ValueError, match=refusal):
        ExportUnit.from_dict(data)


@pytest.mark.parametrize("damaged", ["checkpoint", "record"])
async def test_a_truncated_checkpoint_or_record_names_its_file_and_restart_recovers(
    small: SandboxServer, tmp_path: Path, damaged: str
) -> None:
    out = tmp_path / "out"
    if damaged == "checkpoint":
        unit = await _interrupted(small, out)
    else:
        (unit,) = plan_export([small.default_org_id])
        await _run_whole(small, unit, out)
    path = _unit_paths(out, unit)[damaged]
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])

    for _ in range(2):  # every later run says the same, and changes nothing
        with pytest.raises(UnitStateError) as refused:
            await _run_whole(small, unit, out)
        message = str(refused.value)
        assert str(path) in message
        assert "damaged" in message
        assert f"--restart-unit {unit.unit_id}" in message

    restart_unit(out, unit)
    _assert_every_invoice_once(out, await _run_whole(small, unit, out))


async def test_cli_restart_unit_recovers_a_damaged_unit(
    small: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    unit = await _interrupted(small, out)
    checkpoint = _unit_paths(out, unit)["checkpoint"]
    checkpoint.write_bytes(checkpoint.read_bytes()[:10])
    orgs = tmp_path / "orgs.txt"
    orgs.write_text(small.default_org_id + "\n", encoding="utf-8")
    args = ("export", "invoices", "--orgs-file", orgs, "--out-dir", out, "--no-progress")

    failed = await run_cli(*args, env=cli_env(small))
    assert str(checkpoint) in assert_one_line_error(failed)
    assert f"--restart-unit {unit.unit_id}" in failed.stderr

    fixed = await run_cli(*args, "--restart-unit", unit.unit_id, env=cli_env(small))
    assert fixed.code == 0, fixed.stderr
    (result,) = read_manifest(out)
    _assert_every_invoice_once(out, result)


async def test_a_page_token_the_server_refuses_restarts_the_unit_from_its_window_start(
    small: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    unit = await _interrupted(small, out)
    checkpoint = _unit_paths(out, unit)["checkpoint"]
    state = orjson.loads(checkpoint.read_bytes())
    assert state["rows"] == 3 * SMALL_PAGE
    state["token"] = "ZXhwaXJlZC10b2tlbg"  # what an expired token looks like to us: refused
    checkpoint.write_bytes(orjson.dumps(state))

    result = await _run_whole(small, unit, out)

    _assert_every_invoice_once(out, result)
    assert result.resumed_from == 0  # restarted, not resumed


async def test_a_checkpoint_size_moved_into_a_row_is_refused_before_publishing(
    small: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    unit = await _interrupted(small, out)
    paths = _unit_paths(out, unit)
    state = orjson.loads(paths["checkpoint"].read_bytes())
    state["size"] -= 17  # now in the middle of the last staged row
    paths["checkpoint"].write_bytes(orjson.dumps(state))
    staged = paths["stage"].read_bytes()

    with pytest.raises(UnitStateError, match="not at the end of a record"):
        await _run_whole(small, unit, out)

    assert not paths["final"].exists()
    assert paths["stage"].read_bytes() == staged  # nothing cut
    restart_unit(out, unit)
    _assert_every_invoice_once(out, await _run_whole(small, unit, out))


@pytest.mark.parametrize("tamper", ["newline", "rows"])
async def test_a_stage_not_ending_on_a_record_is_never_published(
    small: SandboxServer, tmp_path: Path, tamper: str
) -> None:
    """A checkpoint saying every page is staged over a stage whose last row lost its end (or
    holding another count of rows than the stage): refused, nothing published."""
    out = tmp_path / "out"
    unit = await _interrupted(small, out)
    paths = _unit_paths(out, unit)
    state = orjson.loads(paths["checkpoint"].read_bytes())
    state["token"] = "<done>"  # as if the last page were staged: publish next
    if tamper == "rows":
        state["rows"] += 1
    else:
        staged = paths["stage"].read_bytes()
        paths["stage"].write_bytes(staged[:-1] + b" ")  # same size, the newline gone
    paths["checkpoint"].write_bytes(orjson.dumps(state))

    with pytest.raises(UnitStateError, match=r"record|staged rows"):
        await _run_whole(small, unit, out)

    assert not paths["final"].exists()
    assert read_manifest(out) == []
