"""_ratelimit.py and the retry budget in _retry.py, on an injected clock: no test sleeps."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest

from amili_async._ratelimit import (
    BETA,
    MAX_PAUSE,
    MIN_RATE,
    AdaptiveRate,
    FixedRate,
    StartTooLate,
    limiter_for,
)
from amili_async._retry import (
    BUDGET_CAPACITY,
    RETRY_COST,
    RetryBudget,
    RetryPolicy,
)


class FakeTime:
    """A monotonic clock that only moves when somebody sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_fixed_rate_spaces_attempts_after_a_small_burst() -> None:
    clock = FakeTime()
    limiter = FixedRate(5.0, clock=clock, sleep=clock.sleep)
    starts = [await limiter.before_attempt() for _ in range(6)]
    # The first attempt uses the one-token burst; every further one waits 1/5 s.
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([0.2] * 5)
    assert clock.now == pytest.approx(1001.0)


async def test_waiters_queue_in_order_and_only_the_head_watches_the_clock() -> None:
    clock = FakeTime()
    limiter = FixedRate(10.0, clock=clock, sleep=clock.sleep)
    order: list[int] = []

    async def call(n: int) -> None:
        await limiter.before_attempt()
        order.append(n)

    await asyncio.gather(*(call(n) for n in range(20)))
    assert order == list(range(20))
    assert clock.now == pytest.approx(1001.9)  # 19 waits of 0.1 s after the first token


async def test_a_retry_after_pauses_the_whole_client_briefly() -> None:
    clock = FakeTime()
    limiter = FixedRate(1000.0, clock=clock, sleep=clock.sleep)
    limiter.after_response(429, {"Retry-After": "30"}, clock())
    before = clock.now
    await limiter.before_attempt()
    assert clock.now - before == pytest.approx(MAX_PAUSE)  # bounded: one odd header cannot stall
    limiter.after_response(200, {}, clock())
    before = clock.now
    await limiter.before_attempt()
    assert clock.now == before  # over once it has passed


async def test_adaptive_is_unthrottled_until_the_server_throttles() -> None:
    clock = FakeTime()
    limiter = AdaptiveRate(clock=clock, sleep=clock.sleep)
    for _ in range(100):
        await limiter.before_attempt()
        limiter.after_response(200, {}, clock())
        clock.now += 0.01
    assert limiter.rate is None
    assert clock.slept == []


async def test_adaptive_cuts_on_throttle_and_grows_back_on_success() -> None:
    clock = FakeTime()
    limiter = AdaptiveRate(clock=clock, sleep=clock.sleep)
    for _ in range(300):  # ~100 answers a second for three seconds
        limiter.after_response(200, {}, clock())
        clock.now += 0.01
    limiter.after_response(429, {}, clock())
    cut = limiter.rate
    assert cut is not None
    assert cut == pytest.approx(BETA * 100, rel=0.1)
    rates = []
    for _ in range(400):
        await limiter.before_attempt()
        limiter.after_response(200, {}, clock())
        rates.append(limiter.rate)
    assert rates[-1] is not None
    assert rates[-1] > cut  # it grew back
    assert all(r is not None and r >= MIN_RATE for r in rates)


async def test_adaptive_never_goes_below_its_floor() -> None:
    clock = FakeTime()
    limiter = AdaptiveRate(clock=clock, sleep=clock.sleep)
    for _ in range(50):
        limiter.after_response(429, {}, clock())
        clock.now += 1.0
    assert limiter.rate == pytest.approx(MIN_RATE)


@pytest.mark.parametrize("bad", ["fast", 0, -1, float("nan"), True])
def test_bad_rate_limits_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        limiter_for(bad)  # type: ignore[arg-type]


def test_the_budget_pays_for_retries_and_successes_refill_it() -> None:
    budget = RetryBudget(capacity=10)
    assert budget.withdraw(RETRY_COST)
    assert budget.withdraw(RETRY_COST)
    assert not budget.withdraw(RETRY_COST)
    assert (budget.tokens, budget.refused) == (0, 1)
    budget.refund(3)
    assert budget.tokens == 3
    budget.refund(100)
    assert budget.tokens == 10


def run_calls(calls: int, fail_rate: float, budget: RetryBudget | None, seed: int = 7) -> float:
    """Attempts per call against a server failing `fail_rate` of attempts with 503."""
    server = random.Random(seed)
    policy = RetryPolicy(max_retries=2)
    attempts = 0
    for _ in range(calls):
        state = policy.start(lambda: 0.5, lambda: 0.0, budget=budget, monotonic=lambda: 0.0)
        while True:
            attempts += 1
            status = 503 if server.random() < fail_rate else 200
            if state.after_response(status, {}) is None:
                break
    return attempts / calls


def test_a_broad_outage_costs_about_one_attempt_per_call_with_the_budget() -> None:
    without = run_calls(5000, 0.5, None)
    with_budget = run_calls(5000, 0.5, RetryBudget())
    assert without == pytest.approx(1.75, rel=0.05)  # 1 + 0.5 + 0.25
    assert with_budget <= 1.5


def test_a_healthy_client_never_notices_the_budget() -> None:
    budget = RetryBudget()
    assert run_calls(5000, 0.02, budget) == pytest.approx(run_calls(5000, 0.02, None))
    assert budget.refused == 0
    assert budget.tokens == BUDGET_CAPACITY


# --- a limit on the wait (what is left of a call's deadline or timeout): fail fast, not late


class SharedTime(FakeTime):
    """FakeTime whose sleep lets the other callers run: only the gate's head ever sleeps, so
    the clock moves exactly as far as the head waits."""

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        await asyncio.sleep(0)


async def start_all(limiter: FixedRate | AdaptiveRate, clock: FakeTime, waits: list[float]) -> Any:
    """Queue one caller per max_wait, in order; each one's outcome and start time."""

    async def call(max_wait: float) -> tuple[str, float, float]:
        arrived = clock()
        try:
            started = await limiter.before_attempt(max_wait)
        except StartTooLate as late:
            return (
                f"late {late.max_wait}" if late.max_wait != max_wait else "late",
                arrived,
                clock(),
            )
        return "started", arrived, started

    return await asyncio.gather(*(call(w) for w in waits))


async def test_a_caller_that_cannot_start_in_time_fails_at_once() -> None:
    clock = SharedTime()
    limiter = FixedRate(1.0, clock=clock, sleep=clock.sleep)
    outcomes = await start_all(limiter, clock, [3.5] * 8)
    # One a second: the first four (t = 0, 1, 2, 3) make it; the rest are told at arrival.
    assert [o[0] for o in outcomes] == ["started"] * 4 + ["late"] * 4
    for kind, arrived, at in outcomes:
        assert at - arrived <= 3.5
        if kind == "late":
            assert at == arrived  # failed fast, not after waiting out its time
    assert clock.now == pytest.approx(1003.0)


async def test_callers_queued_when_the_rate_is_cut_are_shed_before_their_deadline() -> None:
    clock = SharedTime()
    limiter = AdaptiveRate(clock=clock, sleep=clock.sleep)
    for _ in range(40):  # ~10 answers a second, then a throttle: a limit near 8/s
        limiter.after_response(200, {}, clock())
        clock.now += 0.1
    limiter.after_response(429, {}, clock())
    assert limiter.rate is not None
    assert limiter.rate > 4

    async def throttle_forever() -> None:
        # The server keeps answering 429: the rate falls to its floor while callers wait.
        for _ in range(100):
            limiter.after_response(429, {}, clock())
            await asyncio.sleep(0)  # answers arrive between the head's looks at the clock

    thrower = asyncio.create_task(throttle_forever())
    outcomes = await start_all(limiter, clock, [2.0] * 12)
    await thrower
    kinds = [o[0] for o in outcomes]
    assert "started" in kinds
    # Shed while queued: told after arriving, once the cut rate made their start too late.
    assert any(kind == "late" and at > arrived for kind, arrived, at in outcomes)
    for _, arrived, at in outcomes:
        assert at - arrived <= 2.0  # nobody starts, or hears it cannot, after its limit


async def test_the_head_fails_when_a_pause_outlasts_its_wait() -> None:
    clock = SharedTime()
    limiter = FixedRate(1000.0, clock=clock, sleep=clock.sleep)
    limiter.after_response(429, {"Retry-After": "30"}, clock())  # pauses MAX_PAUSE
    with pytest.raises(StartTooLate):
        await limiter.before_attempt(MAX_PAUSE / 2)
    assert clock.slept == []
    assert await limiter.before_attempt(MAX_PAUSE * 2) == pytest.approx(1000.0 + MAX_PAUSE)


async def test_a_cancelled_waiter_leaves_the_queue_in_order() -> None:
    clock = SharedTime()
    limiter = FixedRate(1.0, clock=clock, sleep=clock.sleep)
    await limiter.before_attempt()
    head = asyncio.create_task(limiter.before_attempt(10))
    middle = asyncio.create_task(limiter.before_attempt(10))
    last = asyncio.create_task(limiter.before_attempt(10))
    await asyncio.sleep(0)
    middle.cancel()
    assert await head == pytest.approx(1001.0)
    assert await last == pytest.approx(1002.0)
    assert middle.cancelled()
