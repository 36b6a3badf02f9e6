"""`_cli/_signals.interruptible`: SIGINT and SIGTERM cancel the command, let it unwind, and
report which signal stopped it, also when SIGINT was inherited ignored (a background job)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from amili_async._cli._signals import Interrupted, interruptible


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored, as a shell leaves it in a background job; restored afterwards."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


async def _command(signum: int, unwound: list[str]) -> str:
    """Sends itself `signum`, then waits for ever; records that its clean-up ran."""
    try:
        os.kill(os.getpid(), signum)
        await asyncio.Event().wait()
        return "finished"  # pragma: no cover - the signal cancels the wait
    finally:
        unwound.append("cleaned up")


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
@pytest.mark.usefixtures("sigint_ignored")
def test_a_stop_signal_cancels_the_command_after_its_clean_up(signum: int, status: int) -> None:
    unwound: list[str] = []
    with pytest.raises(Interrupted) as stopped:
        asyncio.run(interruptible(_command(signum, unwound)))
    assert stopped.value.signum == signum
    assert stopped.value.exit_status == status
    assert unwound == ["cleaned up"]


@pytest.mark.usefixtures("sigint_ignored")
def test_the_handlers_are_removed_when_the_command_ends() -> None:
    async def quick() -> str:
        return "done"

    assert asyncio.run(interruptible(quick())) == "done"
    # SIGTERM is back to its default: the loop's handler did not outlive the command.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_cancellation_of_its_own_is_not_reported_as_a_signal() -> None:
    async def cancels_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(interruptible(cancels_itself()))
