"""_gc.paused: process-wide, counted and thread-safe; it never enables or disables the
collector itself, so whoever called gc.disable() keeps it disabled (issue 19)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from amili_async import _gc

WAIT = 10.0
"""Deadlock guard for the thread handshakes: a correct pause sets them at once."""


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[tuple[int, ...]]:
    """Each test starts with the collector enabled at the default thresholds and leaves it
    as it found it, whatever it did."""
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    gc.enable()
    gc.set_threshold(700, 10, 10)
    try:
        yield gc.get_threshold()
    finally:
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()
        else:
            gc.disable()


def automatic() -> bool:
    """Whether the collector would run on its own now (enabled, generation 0 threshold set)."""
    return gc.isenabled() and gc.get_threshold()[0] > 0


def test_no_automatic_collection_runs_inside_a_pause() -> None:
    runs: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.collect()  # the count starts at 0: a run would be caused by what the block allocates
    gc.callbacks.append(count)
    try:
        with _gc.paused():
            survivors = [[i] for i in range(20_000)]  # ~28 thresholds' worth
            inside = len(runs)
        assert inside == 0
        del survivors
        gc.collect()
        assert runs, "the callback counts runs"
    finally:
        gc.callbacks.remove(count)


def test_nested_pauses_end_with_the_outermost(collector_restored: tuple[int, ...]) -> None:
    with _gc.paused():
        with _gc.paused():
            assert _gc.depth() == 2
            assert not automatic()
        assert _gc.depth() == 1
        assert not automatic(), "the inner pause ended the outer one"
    assert _gc.depth() == 0
    assert gc.get_threshold() == collector_restored
    assert gc.isenabled()


def test_a_callers_own_disable_before_a_pause_is_kept() -> None:
    gc.disable()
    with _gc.paused():
        pass
    assert not gc.isenabled()


def test_a_callers_own_disable_during_a_pause_is_kept() -> None:
    with _gc.paused():
        gc.disable()
    assert not gc.isenabled()


def test_a_threshold_set_during_a_pause_wins() -> None:
    with _gc.paused():
        gc.set_threshold(5000, 20, 20)
    assert gc.get_threshold() == (5000, 20, 20)


def test_the_exception_path_restores_the_collector(collector_restored: tuple[int, ...]) -> None:
    with pytest.raises(ZeroDivisionError), _gc.paused(), _gc.paused():
        1 / 0  # noqa: B018
    assert _gc.depth() == 0
    assert gc.get_threshold() == collector_restored
    assert gc.isenabled()


def test_another_thread_disabling_gc_during_our_pause_keeps_it_disabled() -> None:
    paused, disabled = threading.Event(), threading.Event()

    def other() -> None:
        assert paused.wait(WAIT)
        gc.disable()
        disabled.set()

    thread = threading.Thread(target=other)
    thread.start()
    with _gc.paused():
        paused.set()
        assert disabled.wait(WAIT)
    thread.join(WAIT)
    assert not gc.isenabled()


def test_overlapping_pauses_in_two_threads_end_with_the_last(
    collector_restored: tuple[int, ...],
) -> None:
    """Thread A pauses, B pauses, A ends (still paused: B's is open), B ends (restored)."""
    b_paused, a_ended, b_may_end = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def b() -> None:
        with _gc.paused():
            b_paused.set()
            assert b_may_end.wait(WAIT)

    thread = threading.Thread(target=b)
    with _gc.paused():
        thread.start()
        assert b_paused.wait(WAIT)
    a_ended.set()
    seen["after A"] = (automatic(), _gc.depth())
    b_may_end.set()
    thread.join(WAIT)
    assert seen["after A"] == (False, 1)
    assert _gc.depth() == 0
    assert gc.get_threshold() == collector_restored
    assert gc.isenabled()


def test_a_pause_in_one_thread_and_a_disable_in_another_before_it() -> None:
    """B disables GC, then A pauses and ends: A restores thresholds, GC stays disabled."""
    disabled = threading.Event()

    def b() -> None:
        gc.disable()
        disabled.set()

    thread = threading.Thread(target=b)
    thread.start()
    assert disabled.wait(WAIT)
    thread.join(WAIT)
    with _gc.paused():
        pass
    assert not gc.isenabled()
