"""Every retry decision of the SDK: what is retried, how often, and how long to wait.

The transport describes each attempt's outcome (an exception, or a status with its headers)
and asks :class:`RetryState` what to do: retry after N seconds, or stop. Tokens are not its
business: the refresh and resend after a 401 is :mod:`amili_async._auth`'s. Pure functions
of their inputs (the clock and the random source are passed in), so tests need neither a
clock nor a sleep.

Bulk submission (``amili_async.bulk``) sits above this: a chunk whose POST outcome stays
unknown after the transport's own retries is looked up by its idempotency key and, if not
found, sent again, at most ``RECONCILE_ROUNDS`` times. So one chunk costs at most
``RECONCILE_ROUNDS * (1 + max_retries)`` POSTs (9 with the defaults), every one carrying the
same idempotency key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Final

import aiohttp
import attrs
import msgspec

from amili_async._config import BACKOFF_BASE, BACKOFF_CAP, DEFAULT_MAX_RETRIES, MAX_RETRY_AFTER
from amili_async._time import parse_retry_after

# Statuses that say "try again later" rather than "your request is wrong": request timeout,
# rate limit, and the server-side failures a load balancer or a restart produces.
RETRYABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})
# Failures that may pass on a second try: refused or reset connections, a body cut short,
# a timeout. (aiohttp's ServerTimeoutError is both a connection error and a TimeoutError.)
RETRYABLE_ERRORS: Final = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
# Connection errors a retry cannot fix: the server's certificate will not change in a second.
FINAL_ERRORS: Final = (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch)

Random = Callable[[], float]
"""A source of floats in ``[0, 1)``, ``random.random`` outside tests."""

# The retry budget, after the AWS SDKs' "standard" retry quota: 500 tokens, a retry costs 5
# (10 after a timeout, which held a connection longest), a success gives 1 back (a successful
# retry gives back what it cost). A healthy client never notices; in a broad outage the budget
# is spent after ~100 retries and each call then costs about one attempt, not
# 1 + max_retries, so retries cannot multiply the load.
BUDGET_CAPACITY: Final = 500
RETRY_COST: Final = 5
TIMEOUT_RETRY_COST: Final = 10
SUCCESS_REFUND: Final = 1


class RetryBudget:
    """Tokens that retries draw and successes refill, shared by every call of one client."""

    def __init__(self, capacity: int = BUDGET_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.tokens = capacity
        self.refused = 0
        """Retries the budget refused so far (for metrics)."""

    def withdraw(self, cost: int) -> bool:
        """Take ``cost`` tokens for a retry; False (and nothing taken) when too few are left."""
        if cost > self.tokens:
            self.refused += 1
            return False
        self.tokens -= cost
        return True

    def refund(self, amount: int) -> None:
        tokens = self.tokens + amount  # not min(): this runs on every successful call
        self.tokens = tokens if tokens < self.capacity else self.capacity

    def __repr__(self) -> str:
        return f"RetryBudget(tokens={self.tokens}/{self.capacity}, refused={self.refused})"


@attrs.frozen
class Retry:
    """Retry after ``delay`` seconds; ``reason`` (a status or an exception type) is for the
    log line and the retry metric; ``retry_after``: the server's Retry-After set the delay."""

    delay: float
    reason: str
    retry_after: bool = False


Decision = Retry | None
"""What to do after an attempt; None means stop (return the answer or raise the error)."""


@attrs.frozen
class RetryPolicy:
    """How often to retry and how long to wait between tries."""

    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, validator=attrs.validators.ge(0))
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    max_retry_after: float = MAX_RETRY_AFTER

    def start(
        self,
        rng: Random,
        clock: Callable[[], float],
        max_retries: int | None = None,
        may_retry: bool = True,
        deadline: float | None = None,
        retry_for: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        budget: RetryBudget | None = None,
    ) -> RetryState:
        """The decision state of one call.

        ``max_retries`` overrides the policy's; ``may_retry`` False allows no retry at all (a
        POST when POST retries are switched off; the auth's resend after a 401 is not a
        retry). ``deadline`` is a ``monotonic()`` time no wait may pass. ``retry_for`` is a
        budget in time: retries go on past ``max_retries`` for that many seconds from the
        start of the call (a long export riding out an outage). ``budget``, when given, must
        pay for every retry (see :class:`RetryBudget`), except within ``retry_for``: an
        explicit time budget overrides the shared one.
        """
        limit = self.max_retries if max_retries is None else max_retries
        now = monotonic()
        return RetryState(
            self,
            limit if may_retry else 0,
            rng,
            clock,
            deadline,
            monotonic,
            now + retry_for if retry_for is not None and may_retry else None,
            budget,
        )

    def backoff(self, attempt: int, rng: Random) -> float:
        """Exponential backoff with full jitter for the retry numbered ``attempt`` (from 0).

        Full jitter (uniform between 0 and the exponential bound) spreads the retries of
        many clients failing at once instead of having them stampede back together.
        """
        return rng() * min(self.backoff_cap, self.backoff_base * 2.0**attempt)

    def delay_for(self, attempt: int, retry_after: float | None, rng: Random) -> float | None:
        """Seconds to wait before retry ``attempt``, or None when we should not retry.

        The server's Retry-After wins over our backoff. When it asks for longer than
        ``max_retry_after`` we do not retry: blocking a caller for minutes inside one call is
        worse than handing them the error (which carries ``retry_after``) to schedule it.
        """
        if retry_after is None:
            return self.backoff(attempt, rng)
        if retry_after > self.max_retry_after:
            return None
        return retry_after


class RetryState(msgspec.Struct):
    """The retry decisions of one call, attempt after attempt (a msgspec Struct: one per
    call, built in C; see `_response.Response`)."""

    policy: RetryPolicy
    max_retries: int
    rng: Random
    clock: Callable[[], float]
    deadline: float | None = None
    monotonic: Callable[[], float] = time.monotonic
    retry_until: float | None = None
    """Past ``max_retries``, retries go on until this ``monotonic()`` time (None: they stop)."""
    budget: RetryBudget | None = None
    retries: int = 0
    _last_cost: int = 0

    def _may_retry(self) -> bool:
        return self.retries < self.max_retries or self._within_retry_for()

    def _within_retry_for(self) -> bool:
        return self.retry_until is not None and self.monotonic() < self.retry_until

    def remaining(self) -> float | None:
        """Seconds left before the call's deadline (may be <= 0), None without one."""
        return None if self.deadline is None else self.deadline - self.monotonic()

    def after_error(self, error: BaseException) -> Retry | None:
        """An attempt got no answer: retry transient failures while retries are left."""
        if not isinstance(error, RETRYABLE_ERRORS) or isinstance(error, FINAL_ERRORS):
            return None
        if not self._may_retry():
            return None
        cost = TIMEOUT_RETRY_COST if isinstance(error, TimeoutError) else RETRY_COST
        delay = self.policy.backoff(self.retries, self.rng)
        return self._retry(delay, type(error).__name__, cost)

    def after_response(self, status: int, headers: Mapping[str, str]) -> Decision:
        """An attempt got an answer: retry retryable statuses while retries are left."""
        if status not in RETRYABLE_STATUS:
            if self.budget is not None and status < 400:
                # A success refills the budget: a first try by one token, a successful retry by
                # what that retry cost (AWS standard mode), so a flaky outage still drains it.
                self.budget.refund(self._last_cost or SUCCESS_REFUND)
            return None
        if not self._may_retry():
            return None
        retry_after = parse_retry_after(headers.get("Retry-After"), self.clock())
        delay = self.policy.delay_for(self.retries, retry_after, self.rng)
        if delay is None:
            return None
        return self._retry(delay, str(status), RETRY_COST, retry_after is not None)

    def gives_up_at(self) -> float | None:
        """The ``monotonic()`` time after which no retry is taken past ``max_retries`` (the
        earlier of the deadline and the end of ``retry_for``), None when neither is set."""
        ends = [t for t in (self.deadline, self.retry_until) if t is not None]
        return min(ends) if ends else None

    def _retry(
        self, delay: float, reason: str, cost: int, retry_after: bool = False
    ) -> Retry | None:
        remaining = self.remaining()
        if remaining is not None and delay >= remaining:
            return None  # the wait alone would pass the deadline: hand the error back now
        if self.budget is not None:
            if self.budget.withdraw(cost):
                self._last_cost = cost
            elif not self._within_retry_for():
                return None  # the client's retry budget is spent: fail fast, do not pile on
            # else: the caller asked to ride out an outage (retry_for); backoff paces it.
        self.retries += 1
        return Retry(delay, reason, retry_after)
