"""Seeded fault injection: error statuses, latency, dropped connections, broken bodies.

A :class:`FaultConfig` is built in code or parsed from a spec string such as
``"429=0.05,500=0.02,502=0.01,503=0.01,latency=20ms,jitter=5ms,drop_before=0.01,``
``drop_after=0.01,truncate=0.01,html=0.01,seed=42"``.

Per request the injector draws from one ``random.Random(seed)`` in a fixed order (one draw
for the fault kind, one for the jitter), so a run with the same seed and the same request
sequence sees the same faults. Latency (with jitter) applies to every API request; at most
one of the other faults is picked per request, by its probability.

- ``429`` / ``503``: ProblemDetails with ``Retry-After`` (seconds); ``500`` / ``502``:
  ProblemDetails. These answer *instead of* the handler (nothing is processed).
- ``html``: a proxy-style ``text/html`` 502 page (nothing is processed).
- ``drop_before``: the connection is closed before the handler runs (nothing is processed).
- ``drop_after``: the handler runs (a POST *is* processed and stored, so an idempotent
  retry gets the original result), the headers and half of the body are sent, then the
  connection is closed.
- ``truncate``: the handler runs, the whole body is sent under a ``Content-Length`` larger
  than the body, then the connection is closed.

``/token`` is exempt unless ``token=1`` (``FaultConfig.include_token``).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable

import attrs
from aiohttp import web

from ._http import ADMIN_PREFIX, problem_response

__all__ = ["FAULT_KINDS", "FAULT_SPEC_KEYS", "FaultConfig", "FaultInjector", "fault_middleware"]

#: Fault kinds in draw order, with their spec key and FaultConfig attribute.
FAULT_KINDS: tuple[tuple[str, str], ...] = (
    ("429", "rate_429"),
    ("500", "rate_500"),
    ("502", "rate_502"),
    ("503", "rate_503"),
    ("drop_before", "drop_before"),
    ("drop_after", "drop_after"),
    ("truncate", "truncate"),
    ("html", "html"),
)

#: Every key of a fault spec with what it does (shown by `amili-async sandbox --help`).
FAULT_SPEC_KEYS: dict[str, str] = {
    "429": "probability of 429 Too Many Requests (with Retry-After)",
    "500": "probability of 500 Internal Server Error",
    "502": "probability of 502 Bad Gateway (JSON problem)",
    "503": "probability of 503 Service Unavailable (with Retry-After)",
    "drop_before": "probability of closing the connection before the request is handled",
    "drop_after": "probability of handling the request, then cutting the answer in half",
    "truncate": "probability of handling the request, then a body shorter than Content-Length",
    "html": "probability of an nginx-style HTML 502 page",
    "latency": "delay before every answer (20ms, 0.5s; a bare number is milliseconds)",
    "jitter": "random +/- added to the latency (same units)",
    "seed": "seed of the fault draws (same seed, same faults)",
    "retry_after": "Retry-After seconds sent with 429 and 503 (default 1)",
    "token": "1 to inject faults into /token too (default 0)",
}

# What an nginx in front of the API answers when the upstream fails: not JSON, on purpose.
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
# A duration in a fault spec: seconds, or with an explicit "ms" or "s" unit.
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*$")


def _check_rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"fault rate {name}={value} is outside [0, 1]")
    return value


@attrs.frozen(kw_only=True)
class FaultConfig:
    """Probabilities (0..1) per fault kind, latency/jitter in seconds, and the RNG seed."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_502: float = 0.0
    rate_503: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    truncate: float = 0.0
    html: float = 0.0
    latency: float = 0.0
    jitter: float = 0.0
    seed: int = 0
    #: Retry-After seconds sent with 429 and 503.
    retry_after: int = 1
    #: Apply faults to ``/token`` too.
    include_token: bool = False

    def __attrs_post_init__(self) -> None:
        total = 0.0
        for key, attr in FAULT_KINDS:
            total += _check_rate(key, getattr(self, attr))
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}, more than 1")
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must be >= 0")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")

    @property
    def total_rate(self) -> float:
        """The chance that a request meets some fault (the sum of the kinds' rates)."""
        return float(sum(getattr(self, attr) for _, attr in FAULT_KINDS))

    @classmethod
    def parse(cls, spec: str) -> FaultConfig:
        """Parse ``"429=0.05,latency=20ms,seed=42"``; raise ValueError on anything odd.

        Keys: 429, 500, 502, 503, drop_before, drop_after, truncate, html (probabilities
        0..1, or percentages like ``5%``); latency, jitter (``20ms``, ``0.02s``; a bare
        number means milliseconds); seed (int); retry_after (whole seconds); token (0/1).
        """
        rates = {key: attr for key, attr in FAULT_KINDS}
        values: dict[str, object] = {}
        seen: set[str] = set()
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not value:
                raise ValueError(f"fault spec item {item!r} is not key=value")
            if key in seen:
                raise ValueError(f"fault spec key {key!r} given twice")
            seen.add(key)
            if key in rates:
                values[rates[key]] = _parse_rate(key, value)
            elif key in ("latency", "jitter"):
                values[key] = _parse_duration(key, value)
            elif key == "seed":
                values["seed"] = _parse_int(key, value)
            elif key == "retry_after":
                values["retry_after"] = _parse_int(key, value.removesuffix("s"))
            elif key == "token":
                if value.lower() not in ("0", "1", "true", "false", "on", "off"):
                    raise ValueError(f"fault spec token={value!r}: expected 0/1/true/false")
                values["include_token"] = value.lower() in ("1", "true", "on")
            else:
                known = ", ".join(FAULT_SPEC_KEYS)
                raise ValueError(f"unknown fault spec key {key!r} (known: {known})")
        return cls(**values)  # type: ignore[arg-type]


def _parse_rate(key: str, value: str) -> float:
    try:
        rate = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ValueError(f"fault spec {key}={value!r}: not a probability") from None
    return _check_rate(key, rate)


def _parse_duration(key: str, value: str) -> float:
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"fault spec {key}={value!r}: expected a duration like 20ms or 0.5s")
    number = float(m.group(1))
    return number if m.group(2) == "s" else number / 1000


def _parse_int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"fault spec {key}={value!r}: not an integer") from None


class FaultInjector:
    """One FaultConfig plus its seeded RNG; draws the fault for each request."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        #: Requests seen so far (observable by tests).
        self.draws = 0
        self._table = [
            (kind, getattr(config, attr)) for kind, attr in FAULT_KINDS if getattr(config, attr)
        ]

    def draw(self) -> tuple[str | None, float]:
        """(fault kind or None, delay in seconds) for the next request."""
        self.draws += 1
        roll = self._rng.random()
        kind = None
        acc = 0.0
        for name, rate in self._table:
            acc += rate
            if roll < acc:
                kind = name
                break
        delay = self.config.latency
        if self.config.jitter:
            delay += self._rng.uniform(-self.config.jitter, self.config.jitter)
        return kind, max(0.0, delay)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Request key under which the injected fault kind (or None) is noted (for the request log).
FAULT_NOTE: web.RequestKey[str | None] = web.RequestKey("amili_fault")
#: A one-element list holding the active injector (or None); swapped at runtime.
FAULTS_KEY: web.AppKey[list[FaultInjector | None]] = web.AppKey("amili_faults")


def _close(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _send_broken(
    request: web.Request, resp: web.StreamResponse, kind: str
) -> web.StreamResponse:
    """Re-send ``resp`` with a body cut short (drop_after) or a lying Content-Length."""
    body = resp.body if isinstance(resp, web.Response) else b""
    if not isinstance(body, bytes):  # pragma: no cover - our handlers send bytes
        body = b""
    broken = web.StreamResponse(status=resp.status, reason=resp.reason)
    for name, value in resp.headers.items():
        if name.lower() not in ("content-length", "transfer-encoding"):
            broken.headers.add(name, value)
    if kind == "drop_after" and len(body) > 1:
        broken.content_length = len(body)
        sent = body[: len(body) // 2]
    else:
        broken.content_length = len(body) + 64
        sent = body
    await broken.prepare(request)
    if sent:
        await broken.write(sent)
    _close(request)
    return broken


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Inject the app's configured faults (latency, errors, broken connections) per request."""
    holder = request.app[FAULTS_KEY]
    injector: FaultInjector | None = holder[0] if holder else None
    if injector is None or request.path.startswith(ADMIN_PREFIX):
        return await handler(request)
    if request.path == "/token" and not injector.config.include_token:
        return await handler(request)
    kind, delay = injector.draw()
    request[FAULT_NOTE] = kind  # for the request log (--log-requests)
    if delay > 0:
        await asyncio.sleep(delay)
    if kind is None:
        return await handler(request)
    retry = {"Retry-After": str(injector.config.retry_after)}
    if kind == "429":
        return problem_response(
            request, 429, "Rate limit exceeded (injected fault).", headers=retry
        )
    if kind == "503":
        return problem_response(
            request, 503, "Service temporarily unavailable (injected fault).", headers=retry
        )
    if kind in ("500", "502"):
        return problem_response(request, int(kind), "Injected fault.")
    if kind == "html":
        return web.Response(status=502, body=_HTML_502, content_type="text/html")
    if kind == "drop_before":
        _close(request)
        return web.Response(status=500)  # never reaches the client
    resp = await handler(request)  # drop_after / truncate: really processed
    return await _send_broken(request, resp, kind)
