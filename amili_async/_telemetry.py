"""OpenTelemetry traces and metrics of what the SDK did, at no cost while they are off.

On when the application has set a tracer or a meter provider (the ``[otel]`` extra: the API
only; the application brings the SDK). Nothing here imports OpenTelemetry: an application
that sets a provider has imported it already, so every hook first looks ``opentelemetry.trace``
and ``opentelemetry.metrics`` up in ``sys.modules`` and, absent or without a provider, hands
back what it was given untouched (docs/DESIGN.md, "Telemetry"). The call sites are one line
each: the resource methods (`operation`, `listing`), the transport (`attempt`, `retrying`,
`event`, `waited`), bulk (`chunk`), the export engine (`span`) and the webhook handler
(`receiver`, `annotate`).

No attribute holds a body, a header, a query string, a token or personal data: operation
names, ids (organisation, unit, idempotency key), methods, hosts, paths, statuses and counts.
What each span and metric means: README, "Observability".
"""

from __future__ import annotations

import collections
import functools
import inspect
import sys
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

SCOPE: Final = "amili_async"
"""The instrumentation scope of every span and metric (the package's import name)."""

DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    7.5,
    10,
)
"""The bucket boundaries (seconds) the HTTP semantic conventions advise for
``http.client.request.duration``: so the SDK's histogram lines up with every other client's."""

_R = TypeVar("_R")
_F = TypeVar("_F", bound=Callable[..., Any])
_P = TypeVar("_P", bound="_HasItems")
_O = TypeVar("_O", bound="_Outcome")
_A = TypeVar("_A", bound="tuple[_HasStatus, Any]")
Attributes = Mapping[str, "AttributeValue"]


class _HasItems(Protocol):
    @property
    def items(self) -> Any: ...


class _HasStatus(Protocol):
    @property
    def status_code(self) -> int: ...


class _Outcome(Protocol):
    """A bulk item result (`bulk.ItemResult`): what became of it and under which chunk key."""

    @property
    def outcome(self) -> str: ...
    @property
    def idempotency_key(self) -> str | None: ...


class _Instruments:
    """The tracer and the metric instruments of one pair of providers (either may be None)."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        from opentelemetry import metrics, trace

        self.providers = (tracer_provider, meter_provider)
        self.tracer: Tracer | None = (
            None if tracer_provider is None else tracer_provider.get_tracer(SCOPE, __version__)
        )
        self.trace = trace
        meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter(SCOPE, __version__)
        self.duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests (one per attempt, on the wire).",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.retries = meter.create_counter(
            "amili.client.retries", unit="{retry}", description="Retries taken, by reason."
        )
        self.throttled = meter.create_counter(
            "amili.client.throttled", unit="{response}", description="429 answers received."
        )
        self.bulk_items = meter.create_counter(
            "amili.bulk.items", unit="{item}", description="Bulk items by outcome."
        )
        self.deliveries = meter.create_counter(
            "amili.webhook.deliveries", unit="{delivery}", description="Webhook deliveries."
        )
        meter.create_observable_gauge(
            "amili.client.rate_limit",
            callbacks=[_observe_rates],
            unit="{request}/s",
            description="The client-side rate limiter's current rate (absent: unthrottled).",
        )


_override: _Instruments | None = None
_current: _Instruments | None = None
_limiters: weakref.WeakSet[Any] = weakref.WeakSet()


def _on() -> _Instruments | None:
    """The instruments, or None while no provider is set (OpenTelemetry not even imported)."""
    if _override is not None:
        return _override
    modules = sys.modules
    if "opentelemetry" not in modules:  # the common case in one lookup: runs on every call
        return None
    trace_api = modules.get("opentelemetry.trace")
    metrics_api = modules.get("opentelemetry.metrics")
    if trace_api is None and metrics_api is None:
        return None
    return _resolve(trace_api, metrics_api)


def _resolve(trace_api: Any, metrics_api: Any) -> _Instruments | None:
    """The instruments of the global providers; None when neither is set (a proxy or no-op)."""
    global _current
    tracer_provider = None
    if trace_api is not None:
        tracer_provider = trace_api.get_tracer_provider()
        if isinstance(
            tracer_provider, trace_api.ProxyTracerProvider | trace_api.NoOpTracerProvider
        ):
            tracer_provider = None
    meter_provider = None
    if metrics_api is not None:
        meter_provider = metrics_api.get_meter_provider()
        if isinstance(meter_provider, metrics_api.NoOpMeterProvider) or (
            type(meter_provider).__name__ == "_ProxyMeterProvider"
        ):
            meter_provider = None
    if tracer_provider is None and meter_provider is None:
        return None
    current = _current
    if current is None or current.providers != (tracer_provider, meter_provider):
        current = _current = _Instruments(tracer_provider, meter_provider)
    return current


def use(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> Callable[[], None]:
    """Instrument with these providers instead of the global ones until the returned undo is
    called: for tests and the bench, which cannot set a global provider more than once."""
    global _override
    previous, _override = _override, _Instruments(tracer_provider, meter_provider)

    def undo() -> None:
        global _override
        _override = previous

    return undo


def watch_rate(limiter: object | None) -> None:
    """Report this rate limiter's current rate (its ``rate``) in ``amili.client.rate_limit``."""
    if limiter is not None:
        _limiters.add(limiter)


def _observe_rates(options: CallbackOptions) -> Iterable[Observation]:
    from opentelemetry.metrics import Observation

    for limiter in list(_limiters):
        rate = getattr(limiter, "rate", None)
        if isinstance(rate, int | float):
            yield Observation(rate, {"amili.rate_limiter": type(limiter).__name__})


def _error_type(error: BaseException) -> str:
    return type(error).__qualname__


def _fail(span: Span, error_type: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))


async def _in_span(
    on: _Instruments,
    tracer: Tracer,
    name: str,
    coro: Awaitable[_R],
    attributes: Attributes | None = None,
    kind: SpanKind | None = None,
) -> _R:
    """Await ``coro`` in a new current span; a failure sets ``error.type`` (never a message:
    the exception's text is the caller's to report)."""
    span = tracer.start_span(name, kind=kind or on.trace.SpanKind.INTERNAL, attributes=attributes)
    try:
        with on.trace.use_span(span, record_exception=False, set_status_on_exception=False):
            return await coro
    except BaseException as error:
        _fail(span, _error_type(error))
        raise
    finally:
        span.end()


def span(
    name: str, coro: Coroutine[Any, Any, _R], attributes: Attributes | None = None
) -> Coroutine[Any, Any, _R]:
    """``coro`` in a child span named ``name`` (a listing's page, an export unit); ``coro``
    itself while tracing is off."""
    on = _on()
    if on is None or on.tracer is None:
        return coro
    return _in_span(on, on.tracer, name, coro, attributes)


def _call_attributes(
    org_at: int | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    org = kwargs.get("organization_id")
    if org is None and org_at is not None and len(args) > org_at:
        org = args[org_at]
    if isinstance(org, str):
        attributes["amili.organization_id"] = org
    size = kwargs.get("page_size")
    if isinstance(size, int):
        attributes["amili.page_size"] = size
    return attributes


def _org_position(method: Callable[..., Any]) -> int | None:
    names = list(inspect.signature(method).parameters)
    return names.index("organization_id") if "organization_id" in names else None


def operation(operation_id: str, method: _F) -> _F:
    """An async resource method whose every call is one span named for its operationId,
    parent of the call's attempts (``amili.organization_id``; ``error.type`` on failure)."""
    org_at = _org_position(method)

    # Not itself a coroutine: while tracing is off a call is the method's own coroutine, with
    # no frame of ours around it (a GET is on the hot path).
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        coro = method(*args, **kwargs)
        on = _on()
        if on is None or on.tracer is None:
            return coro
        attributes = _call_attributes(org_at, args, kwargs)
        return _in_span(on, on.tracer, operation_id, coro, attributes)

    mark = getattr(inspect, "markcoroutinefunction", None)  # Python 3.12+
    return cast(_F, call if mark is None else mark(call))


class Listing:
    """The operation span of one listing: opened when its iteration starts, ended when it
    ends; every page's requests run in it, and it counts the items (``amili.items``)."""

    def __init__(self, on: _Instruments, tracer: Tracer, name: str, attributes: Attributes):
        self._on = on
        self._tracer = tracer
        self._name = name
        self._attributes = attributes

    async def pages(self, pages: AsyncGenerator[_P, None]) -> AsyncGenerator[_P, None]:
        """``pages``, each fetched and built in the span (which the caller never sees as its
        current span between pages: it is attached only while a page is awaited)."""
        from opentelemetry import context

        span = self._tracer.start_span(self._name, attributes=self._attributes)
        current = self._on.trace.set_span_in_context(span)
        items = 0
        try:
            while True:
                token = context.attach(current)
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    return
                finally:
                    context.detach(token)
                items += len(page.items)
                yield page
        except GeneratorExit:
            raise  # the caller stopped early: not a failure
        except BaseException as error:
            _fail(span, _error_type(error))
            raise
        finally:
            await pages.aclose()
            span.set_attribute("amili.items", items)
            span.end()


def listing(operation_id: str, method: _F, traced: Callable[[Any, Listing], Any]) -> _F:
    """A resource method returning a pager, whose iteration becomes one operation span:
    ``traced(pager, listing)`` makes the pager that iterates in it (see `Listing`)."""
    org_at = _org_position(method)

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        pager = method(*args, **kwargs)
        on = _on()
        if on is None or on.tracer is None:
            return pager
        attributes = _call_attributes(org_at, args, kwargs)
        return traced(pager, Listing(on, on.tracer, operation_id, attributes))

    return cast(_F, call)


def attempt(
    coro: Coroutine[Any, Any, _A], method: str, url: str, number: int
) -> Coroutine[Any, Any, _A]:
    """One HTTP attempt (``coro`` answers the response first): a CLIENT span and one
    ``http.client.request.duration`` measurement. ``url`` is without its query string."""
    on = _on()
    if on is None:
        return coro
    return _attempt(on, coro, method, url, number)


async def _attempt(
    on: _Instruments, coro: Coroutine[Any, Any, _A], method: str, url: str, number: int
) -> _A:
    parts = urlsplit(url)
    where: dict[str, AttributeValue] = {
        "http.request.method": method,
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }
    span = None
    if on.tracer is not None:
        attributes = {**where, "url.full": url}
        if number > 1:
            attributes["http.request.resend_count"] = number - 1
        span = on.tracer.start_span(method, kind=on.trace.SpanKind.CLIENT, attributes=attributes)
    started = time.perf_counter()
    try:
        if span is None:
            result = await coro
        else:
            with on.trace.use_span(span, record_exception=False, set_status_on_exception=False):
                result = await coro
    except BaseException as error:
        error_type = _error_type(error)
        on.duration.record(time.perf_counter() - started, {**where, "error.type": error_type})
        if span is not None:
            _fail(span, error_type)
            span.end()
        raise
    status = result[0].status_code
    measured = {**where, "http.response.status_code": status}
    if status >= 400:
        measured["error.type"] = str(status)
    on.duration.record(getattr(result[0], "elapsed", time.perf_counter() - started), measured)
    if status == 429:
        on.throttled.add(1, where)
    if span is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            _fail(span, str(status))
        span.end()
    return result


def event(name: str, attributes: Attributes | None = None) -> None:
    """An event on the current span (a token refresh, a rate-limiter wait), if tracing."""
    on = _on()
    if on is not None and on.tracer is not None:
        on.trace.get_current_span().add_event(name, attributes)


def waited(seconds: float) -> None:
    """The rate limiter held an attempt back ``seconds``: an event on the attempt's span."""
    if seconds > 0:
        event("amili.rate_limit.wait", {"amili.wait_s": seconds})


def retrying(reason: str, delay: float, retry_after: bool, attempt: int) -> None:
    """A retry is about to wait ``delay`` s: a ``backoff`` (or ``retry_after``, when the
    server's Retry-After set the delay) event on the operation's span, and one retry counted
    under its ``reason`` (a status code or an exception type)."""
    on = _on()
    if on is None:
        return
    on.retries.add(1, {"amili.retry.reason": reason})
    if on.tracer is not None:
        on.trace.get_current_span().add_event(
            "retry_after" if retry_after else "backoff",
            {"amili.retry.delay_s": delay, "amili.retry.reason": reason, "amili.attempt": attempt},
        )


def chunk(
    coro: Coroutine[Any, Any, tuple[list[_O], list[Any]]], size: int
) -> Coroutine[Any, Any, tuple[list[_O], list[Any]]]:
    """One bulk chunk sent once (``coro`` answers its items' results and the items to send
    again): a span with its idempotency key and outcome counts; items counted by outcome."""
    on = _on()
    if on is None:
        return coro
    return _chunk(on, coro, size)


async def _chunk(
    on: _Instruments, coro: Coroutine[Any, Any, tuple[list[_O], list[Any]]], size: int
) -> tuple[list[_O], list[Any]]:
    if on.tracer is not None:
        return await _in_span(on, on.tracer, "amili.bulk.chunk", _counted(on, coro, size))
    results, again = await coro
    _count(on, results)
    return results, again


async def _counted(
    on: _Instruments, coro: Coroutine[Any, Any, tuple[list[_O], list[Any]]], size: int
) -> tuple[list[_O], list[Any]]:
    results, again = await coro
    outcomes = _count(on, results)
    current = on.trace.get_current_span()
    current.set_attributes(
        {
            "amili.bulk.chunk_size": size,
            "amili.bulk.succeeded": outcomes["succeeded"],
            "amili.bulk.failed": outcomes["failed"],
            "amili.bulk.unknown": outcomes["unknown"],
            "amili.bulk.resent": len(again),
        }
    )
    key = results[0].idempotency_key if results else None
    if key is not None:
        current.set_attribute("amili.idempotency_key", key)
    return results, again


def _count(on: _Instruments, results: list[_O]) -> collections.Counter[str]:
    outcomes = collections.Counter(result.outcome for result in results)
    for outcome, count in outcomes.items():
        on.bulk_items.add(count, {"amili.outcome": outcome})
    return outcomes


# What the webhook handler's answers mean: (status, body text) -> the delivery's outcome.
_DELIVERY_OUTCOMES: Final = {
    (200, "ok"): "handled",
    (200, "duplicate"): "duplicate",
    (503, "in progress"): "in_progress",
    (500, "callback failed"): "callback_failed",
    (400, "malformed delivery"): "malformed",
    (401, "invalid signature"): "invalid_signature",
    (408, "body timeout"): "body_timeout",
    (413, "body too large"): "too_large",
}
# Statuses answered before the signature was checked (no verification result).
_UNVERIFIED: Final = frozenset({408, 413})

_Handler = TypeVar("_Handler", bound=Callable[[Any], Awaitable[Any]])


def receiver(handle: _Handler) -> _Handler:
    """The webhook handler with a SERVER span per delivery (``amili.webhook.outcome``, the
    verification result, the event type) and ``amili.webhook.deliveries`` by outcome."""

    @functools.wraps(handle)
    async def serve(request: Any) -> Any:
        on = _on()
        if on is None:
            return await handle(request)
        return await _serve(on, handle, request)

    return cast(_Handler, serve)


async def _serve(on: _Instruments, handle: Callable[[Any], Awaitable[Any]], request: Any) -> Any:
    span = None
    if on.tracer is not None:
        span = on.tracer.start_span(
            f"{request.method} webhook",
            kind=on.trace.SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        )
    try:
        if span is None:
            response = await handle(request)
        else:
            with on.trace.use_span(span, record_exception=False, set_status_on_exception=False):
                response = await handle(request)
    except BaseException as error:
        on.deliveries.add(1, {"amili.outcome": "error"})
        if span is not None:
            _fail(span, _error_type(error))
            span.end()
        raise
    status = response.status
    text = getattr(response, "text", None)
    outcome = _DELIVERY_OUTCOMES.get((status, text if isinstance(text, str) else ""), str(status))
    on.deliveries.add(1, {"amili.outcome": outcome})
    if span is not None:
        span.set_attributes({"http.response.status_code": status, "amili.webhook.outcome": outcome})
        if status not in _UNVERIFIED:
            span.set_attribute("amili.webhook.verified", status != 401)
        if status >= 500:
            _fail(span, str(status))
        span.end()
    return response


def annotate(name: str, value: AttributeValue | None) -> None:
    """Set an attribute of the current span (the webhook's event type), if tracing."""
    if value is None:
        return
    on = _on()
    if on is not None and on.tracer is not None:
        # A str enum (an event type) is recorded as its plain value.
        plain = str(value) if isinstance(value, str) else value
        on.trace.get_current_span().set_attribute(name, plain)
