"""A one-line progress display on stderr: count, rate and, when the total is known, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_INTERVAL = 0.1
"""Seconds between redraws on a terminal: smooth to the eye, negligible cost per item."""
LOG_INTERVAL = 5.0
"""Seconds between progress lines when stderr is a file or pipe (CI logs stay short)."""
ETA_AFTER_UPDATES = 3
"""Updates (chunks or pages) before an ETA is shown: the first one includes the token request
and connection set-up, so a rate measured on it alone promises hours for a minute's work."""


class Progress:
    """Counts items and shows `12,345 invoices  4,567/s  ETA 0:12` without slowing the loop.

    ``noun`` is the plural (`invoices`); ``already`` is what an earlier run did (`--resume`):
    it is in the count, never in the rate, which measures this run only.
    """

    def __init__(
        self,
        noun: str,
        *,
        total: int | None = None,
        already: int = 0,
        stream: TextIO | None = None,
    ) -> None:
        self.plural = noun
        self.singular = singular(noun)
        self.total = total
        self.count = already
        self._already = already
        self._updates = 0
        # sys.stderr when drawn, not when defined: pytest's capsys and a redirect swap it.
        self._stream = sys.stderr if stream is None else stream
        self._tty = self._stream.isatty()
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._drawn: int | None = None  # the count of the last line drawn

    def advance(self, n: int = 1) -> None:
        self.count += n
        self._updates += 1
        now = time.monotonic()
        if now - self._last_draw >= (REDRAW_INTERVAL if self._tty else LOG_INTERVAL):
            self._last_draw = now
            self._draw(now, final=False)

    def close(self) -> None:
        if self._tty or self._drawn != self.count:  # a log gets no second line saying the same
            self._draw(time.monotonic(), final=True)

    def line(self, now: float, *, final: bool) -> str:
        """The progress line at monotonic time `now`."""
        elapsed = now - self._start
        done = self.count - self._already
        rate = done / elapsed if elapsed > 0 else 0.0
        noun = self.singular if (self.total or self.count) == 1 else self.plural
        parts = [
            f"{self.count:,} of {self.total:,} {noun}" if self.total else f"{self.count:,} {noun}"
        ]
        parts.append(f"{rate:,.0f}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.total and rate > 0 and not final and self._updates >= ETA_AFTER_UPDATES:
            parts.append(f"ETA {_clock(max(self.total - self.count, 0) / rate)}")
        return "  ".join(parts)

    def _draw(self, now: float, *, final: bool) -> None:
        self._drawn = self.count
        line = self.line(now, final=final)
        if self._tty:
            self._stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


def singular(plural: str) -> str:
    """`invoices` -> `invoice`, `batches` -> `batch` (the nouns the command line uses)."""
    if plural.endswith("ches"):
        return plural[:-2]
    return plural.removesuffix("s")


def plural(count: int, noun: str) -> str:
    """`1 row`, `2 rows`: `noun` is the plural."""
    return f"{count:,} {singular(noun) if count == 1 else noun}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
