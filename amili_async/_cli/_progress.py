"""A one-line progress display on stderr: count, rate and, when the total is known, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_INTERVAL = 0.1
"""Seconds between redraws on a terminal: smooth to the eye, negligible cost per item."""
LOG_INTERVAL = 5.0
"""Seconds between progress lines when stderr is a file or pipe (CI logs stay short)."""


class Progress:
    """Counts items and shows `12,345 invoices  4,567/s  ETA 0:12` without slowing the loop."""

    def __init__(self, noun: str, *, total: int | None = None, stream: TextIO = sys.stderr) -> None:
        self.noun = noun
        self.total = total
        self.count = 0
        self._stream = stream
        self._tty = stream.isatty()
        self._start = time.monotonic()
        self._last_draw = 0.0

    def advance(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if now - self._last_draw >= (REDRAW_INTERVAL if self._tty else LOG_INTERVAL):
            self._last_draw = now
            self._draw(now, final=False)

    def close(self) -> None:
        self._draw(time.monotonic(), final=True)

    def _draw(self, now: float, *, final: bool) -> None:
        elapsed = now - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.count:,} {self.noun}"]
        if self.total:
            parts[0] += f" of {self.total:,}"
        parts.append(f"{rate:,.0f}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.total and rate > 0 and not final:
            parts.append(f"ETA {_clock(max(self.total - self.count, 0) / rate)}")
        line = "  ".join(parts)
        if self._tty:
            self._stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
