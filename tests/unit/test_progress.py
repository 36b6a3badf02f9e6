"""The CLI's progress line: plurals, no ETA from the first update, the rate of this run only."""

from __future__ import annotations

import io

import pytest

from amili_async._cli._progress import ETA_AFTER_UPDATES, Progress, plural


class Stream(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_plurals() -> None:
    assert plural(1, "invoices") == "1 invoice"
    assert plural(2, "invoices") == "2 invoices"
    assert plural(1, "batches") == "1 batch"
    assert plural(0, "rows") == "0 rows"
    progress = Progress("invoices", total=1, stream=Stream())
    progress.advance()
    assert progress.line(progress._start + 1, final=True).startswith("1 of 1 invoice ")


def test_no_eta_until_a_few_updates() -> None:
    progress = Progress("invoices", total=10_000, stream=Stream())
    for update in range(1, ETA_AFTER_UPDATES + 1):
        progress.advance(100)
        line = progress.line(progress._start + update, final=False)
        assert ("ETA" in line) == (update >= ETA_AFTER_UPDATES), line
    # 300 in 3 s: 100/s, 9,700 to go -> 97 s.
    assert "ETA 0:01:37" in progress.line(progress._start + 3, final=False)


def test_rate_after_resume_counts_only_this_run() -> None:
    progress = Progress("invoices", already=1_000_000, stream=Stream())
    progress.advance(500)
    line = progress.line(progress._start + 10, final=True)
    assert line.startswith("1,000,500 invoices  50/s  ")


def test_a_log_gets_no_closing_line_that_repeats_the_last() -> None:
    stream = Stream()
    progress = Progress("invoices", total=20, stream=stream)
    progress.advance(20)  # the first update is drawn at once
    progress.close()
    assert len(stream.getvalue().splitlines()) == 1
    progress = Progress("invoices", total=20, stream=(stream := Stream()))
    progress.advance(10)
    progress.advance(10)  # within the log interval: not drawn
    progress.close()
    assert [line.split("  ")[0] for line in stream.getvalue().splitlines()] == [
        "10 of 20 invoices",
        "20 of 20 invoices",
    ]


def test_by_default_it_draws_on_the_stderr_of_its_creation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = Progress("invoices", total=3)  # capsys replaced sys.stderr before this
    progress.advance(3)
    progress.close()
    captured = capsys.readouterr()
    assert "3 of 3 invoices" in captured.err
    assert captured.out == ""
