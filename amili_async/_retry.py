"""When to retry and how long to wait: pure functions, so tests need neither clock nor sleep."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

import attrs

from amili_async._config import BACKOFF_BASE, BACKOFF_CAP, DEFAULT_MAX_RETRIES, MAX_RETRY_AFTER

# Statuses that say "try again later" rather than "your request is wrong": request timeout,
# rate limit, and the server-side failures a load balancer or a restart produces.
RETRYABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})

Random = Callable[[], float]
"""A source of floats in ``[0, 1)``, ``random.random`` outside tests."""


@attrs.frozen
class RetryPolicy:
    """How often to retry and how long to wait between tries."""

    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, validator=attrs.validators.ge(0))
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    max_retry_after: float = MAX_RETRY_AFTER

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


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a Retry-After header asks us to wait, None when absent or unreadable.

    ``value`` is delta-seconds or an HTTP date; ``now`` is the current unix time. A date in
    the past or a negative number means "now" (0).
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # float() also reads "nan" and "inf", which are not delta-seconds.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; parsedate_to_datetime leaves "-0000" naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
