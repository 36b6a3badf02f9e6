"""Automatic cyclic GC held off over one synchronous step that allocates many objects which
all survive it (a page parsed, a page's models built).

The collector is process-wide, so the pause is too: one count for the process, under a lock,
shared by nested pauses and by every thread. It never touches `gc.enable()`/`gc.disable()`:
it sets the generation-0 threshold to 0 (CPython's "no automatic collection") and puts the
thresholds back when the last pause ends, so a `gc.disable()` made by anyone, before or during
a pause, stays in force afterwards, and a `gc.set_threshold()` made during a pause wins over
the saved one. `gc.collect()` still works while paused.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
"""Pauses open in the process (all threads, nested ones included)."""
_saved: tuple[int, ...] = ()
"""The thresholds when the first of the open pauses began, put back when the last one ends."""


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block; afterwards the collector as it was.

    A 1,000-invoice page allocates ~20k container objects that all survive the step: the
    collector would run ~30 times over them without freeing any. Paused, it sees them at most
    once afterwards, and not at all when the step also freed as many (see `_pagination`).
    Each step is synchronous (no await inside) and short, so other threads lose nothing but
    collections they would have run over those same milliseconds.
    """
    _begin()
    try:
        yield
    finally:
        _end()


def _begin() -> None:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(0, *_saved[1:])
        _depth += 1


def _end() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0 and gc.get_threshold() == (0, *_saved[1:]):
            gc.set_threshold(*_saved)


def depth() -> int:
    """Pauses open now, process-wide (for tests and diagnostics)."""
    with _lock:
        return _depth
