"""_retry.py: full-jitter backoff, Retry-After parsing and its bound, per-attempt decisions."""

from __future__ import annotations

import inspect
import random
from email.utils import formatdate

import aiohttp
import pytest

import amili_async._retry
from amili_async._retry import (
    RETRYABLE_STATUS,
    Retry,
    RetryPolicy,
    RetryState,
)
from amili_async._time import parse_retry_after
from amili_async.errors import APIConnectionError, ResponseTooLargeError

NOW = 1_700_000_000.0


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.backoff_base, policy.backoff_cap) == (2, 0.5, 8.0)
    assert policy.max_retry_after == 60.0
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRYABLE_STATUS


def test_negative_max_retries_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


@pytest.mark.parametrize(
    ("attempt", "bound"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (30, 8.0)]
)
def test_backoff_spans_zero_to_the_capped_exponential(attempt: int, bound: float) -> None:
    policy = RetryPolicy()
    assert policy.backoff(attempt, lambda: 0.0) == 0.0
    assert policy.backoff(attempt, lambda: 0.5) == pytest.approx(bound / 2)
    assert policy.backoff(attempt, lambda: 0.999999) == pytest.approx(bound, rel=1e-5)


def test_backoff_is_fully_jittered() -> None:
    policy = RetryPolicy()
    rng = random.Random(1234).random
    delays = [policy.backoff(3, rng) for _ in range(2000)]
    assert all(0.0 <= delay < 4.0 for delay in delays)
    # Full jitter: the whole range is used, not just its top.
    assert min(delays) < 0.1
    assert max(delays) > 3.9


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after(formatdate(NOW + 30, usegmt=True), NOW) == 30.0
    assert parse_retry_after(formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    # "-0000" parses as a naive datetime; it is still GMT.
    assert formatdate(NOW + 10).endswith("-0000")
    assert parse_retry_after(formatdate(NOW + 10), NOW) == 10.0


def test_delay_for_prefers_retry_after_within_the_bound() -> None:
    policy = RetryPolicy(max_retry_after=60.0)
    assert policy.delay_for(0, 12.0, lambda: 0.5) == 12.0
    assert policy.delay_for(0, 60.0, lambda: 0.5) == 60.0
    assert policy.delay_for(0, 0.0, lambda: 0.5) == 0.0


def test_delay_for_gives_up_when_asked_to_wait_too_long() -> None:
    assert RetryPolicy(max_retry_after=60.0).delay_for(0, 61.0, lambda: 0.5) is None


def test_delay_for_falls_back_to_backoff() -> None:
    assert RetryPolicy().delay_for(2, None, lambda: 0.5) == 1.0


# --- the decisions the transport asks for ------------------------------------------------------


def state(max_retries: int = 2) -> RetryState:
    return RetryPolicy().start(lambda: 0.5, lambda: NOW, max_retries)


def test_transient_errors_retry_until_the_budget_is_spent() -> None:
    decisions = state(max_retries=2)
    error = aiohttp.ServerDisconnectedError()
    first, second = decisions.after_error(error), decisions.after_error(error)
    assert first == Retry(0.25, "ServerDisconnectedError")
    assert second == Retry(0.5, "ServerDisconnectedError")
    assert decisions.after_error(error) is None


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientSSLError(None, OSError("bad certificate")),  # type: ignore[arg-type]
        aiohttp.InvalidURL("http://"),
        ValueError("not a transport failure"),
    ],
)
def test_final_and_foreign_errors_stop_at_once(error: BaseException) -> None:
    assert state().after_error(error) is None


def test_a_401_is_not_a_retry_decision() -> None:
    """The refresh and resend after a 401 is the auth's (test_auth.py), never the policy's."""
    decisions = state(max_retries=3)
    assert decisions.after_response(401, {}) is None
    assert decisions.retries == 0
    assert not hasattr(amili_async._retry, "REFRESH")
    assert list(inspect.signature(RetryState.after_response).parameters) == [
        "self",
        "status",
        "headers",
    ]


def test_a_body_too_large_is_never_retried() -> None:
    error = ResponseTooLargeError("too large", method="GET", url="https://x.invalid/a", limit=1)
    assert not isinstance(error, APIConnectionError)
    assert state(max_retries=5).after_error(error) is None


def test_retryable_statuses_follow_retry_after_and_its_bound() -> None:
    decisions = state(max_retries=3)
    assert decisions.after_response(503, {"Retry-After": "2"}) == Retry(2, "503", retry_after=True)
    assert decisions.after_response(429, {}) == Retry(0.5, "429")
    assert decisions.after_response(503, {"Retry-After": "3600"}) is None
    assert decisions.after_response(404, {}) is None
    assert decisions.after_response(200, {}) is None


def test_a_per_call_limit_overrides_the_policy() -> None:
    decisions = RetryPolicy(max_retries=5).start(lambda: 0.5, lambda: NOW, 0)
    assert decisions.after_response(503, {}) is None
