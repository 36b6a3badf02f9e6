"""_ratelimit.py and the retry budget in _retry.py, on an injected clock: no test sleeps."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from amili_async._ratelimit import (
    BETA,
    MAX_PAUSE,
    MIN_RATE,
    AdaptiveRate,
    FixedRate,
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
