"""Async iteration over token-paged listings, with prefetch, resume and partitions.

A listing is described by one coroutine function, `fetch(token) -> Page | PendingPage`, that the
resource builds with its filters and page size already bound, so every page request carries
them. The pager only moves tokens: it never knows the endpoint's spelling of its token parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from typing import Any, Generic, TypeVar

import attrs

from . import _gc
from ._tasks import cancel_and_wait
from .errors import AmiliError, RepeatedPageTokenError

T = TypeVar("T")

DEFAULT_PREFETCH = 1
"""Pages fetched ahead of the caller: one hides a round trip per page (the big win) while
keeping memory at two pages; deeper only helps when the caller is slower than the server."""


@attrs.frozen
class Page(Generic[T]):
    """One page of a listing: its items, the token that fetched it and the next page's token."""

    items: Sequence[T]
    next_page_token: str | None
    token: str | None = None
    part: int | None = None
    """In a merged (partitioned) listing, the index of the part this page belongs to."""


@attrs.frozen
class PendingPage(Generic[T]):
    """A page fetched and parsed just far enough to know the next token.

    Its items are built (structured into models) when the caller takes the page, so with
    prefetch the request for the following page is already on the wire while they are built:
    the server's time and the client's decoding overlap instead of adding up.
    """

    build: Callable[[], Sequence[T]]
    next_page_token: str | None
    token: str | None = None


Fetch = Callable[[str | None], Awaitable[Page[T] | PendingPage[T]]]


@attrs.frozen
class _Failure:
    error: BaseException


_END = object()


@contextlib.contextmanager
def _resume_at(token: str | None) -> Iterator[None]:
    """An SDK error raised for a page carries `resume_token` = the token of that page."""
    try:
        yield
    except AmiliError as error:
        error.resume_token = token
        raise


async def _fetch_marked(fetch: Fetch[T], token: str | None) -> Page[T] | PendingPage[T]:
    """Fetch one page, marking a failure with its token."""
    with _resume_at(token):
        return await fetch(token)


class _Tokens:
    """The page tokens one listing has followed: a token seen again would loop forever."""

    __slots__ = ("_seen",)

    def __init__(self, start: str | None) -> None:
        self._seen = {start} if start else set()

    def follow(self, page: Page[T] | PendingPage[T]) -> str | None:
        """The next token to fetch, None at the end; RepeatedPageTokenError on a repeat."""
        token = page.next_page_token
        if not token:
            return None
        if token in self._seen:
            error = RepeatedPageTokenError(
                "the server answered a page token this listing had already followed; "
                "following it again would repeat pages forever"
            )
            error.resume_token = page.token
            raise error
        self._seen.add(token)
        return token


def _ready(entry: Page[T] | PendingPage[T], done: list[Page[T]] | None = None) -> Page[T]:
    """The page with its items built (a build failure is marked with the page's token).

    ``done`` holds the page the caller has finished with: it is let go in the same GC pause,
    after the new page's models exist. The collector counts allocations minus deallocations, so
    the page freed balances the page built and no collection runs over the new models merely
    because they were just allocated (a quarter of streaming CPU otherwise).
    """
    if isinstance(entry, Page):
        return entry
    with _resume_at(entry.token), _gc.paused():
        items = entry.build()
        if done:
            done.clear()
    return Page(items=items, next_page_token=entry.next_page_token, token=entry.token)


class AsyncPager(Generic[T]):
    """A listing: `async for item in pager`, `async for page in pager.pages()`, `collect()`.

    Subclasses say how pages are produced; iteration and collection are shared.
    """

    def pages(self) -> AsyncGenerator[Page[T], None]:
        raise NotImplementedError

    def _item_pages(self, done: list[Page[T]]) -> AsyncGenerator[Page[T], None]:
        """The pages behind the item stream; ``done`` holds the one the caller has finished."""
        return self.pages()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncGenerator[T, None]:
        done: list[Page[T]] = []
        async with contextlib.aclosing(self._item_pages(done)) as pages:
            async for page in pages:
                for item in page.items:
                    yield item
                # Its only holder now: a pager that builds pages frees it with the next one.
                done.clear()
                done.append(page)
                del page

    async def collect(self, limit: int | None = None) -> list[T]:
        """All items (or the first `limit`) as a list: for small listings only."""
        items: list[T] = []
        if limit is not None and limit <= 0:
            return items
        async with contextlib.aclosing(self._items()) as stream:
            async for item in stream:
                items.append(item)
                if limit is not None and len(items) >= limit:
                    break
        return items


async def _drain(
    queue: asyncio.Queue[Any], producer: asyncio.Task[None]
) -> AsyncGenerator[Any, None]:
    """Yield what a producer task queues until its end marker; re-raise its failure.

    On break, an exception in the caller or task cancellation, the producer is cancelled and
    awaited, so no task or connection outlives the iteration.
    """
    try:
        while True:
            entry = await queue.get()
            if entry is _END:
                return
            if isinstance(entry, _Failure):
                raise entry.error
            yield entry
    finally:
        await cancel_and_wait([producer])


class TokenPager(AsyncPager[T]):
    """A token-paged listing: `async for item in pager`, `pager.pages()`, `pager.collect()`.

    Start from a saved token with `page_token=`; an error raised mid-listing carries
    `.resume_token`, the token to pass back to continue with nothing lost and nothing repeated.
    """

    def __init__(
        self, fetch: Fetch[T], *, page_token: str | None = None, prefetch: int = DEFAULT_PREFETCH
    ) -> None:
        if prefetch < 0:
            raise ValueError("prefetch must be >= 0")
        self._fetch = fetch
        self._start = page_token
        self._prefetch = prefetch

    def pages(self) -> AsyncGenerator[Page[T], None]:
        """Yield whole pages (`.items`, `.next_page_token`, `.token`)."""
        return self._pages(None)

    def _item_pages(self, done: list[Page[T]]) -> AsyncGenerator[Page[T], None]:
        return self._pages(done)

    async def _pages(self, done: list[Page[T]] | None) -> AsyncGenerator[Page[T], None]:
        if self._prefetch == 0:
            tokens = _Tokens(self._start)
            token = self._start
            while True:
                page = _ready(await _fetch_marked(self._fetch, token), done)
                yield page
                token = tokens.follow(page)
                if token is None:
                    return
        # One producer task runs at most `prefetch` pages ahead of the caller: it takes a slot
        # before each fetch and the caller frees it on taking the page, so fetched-but-not-taken
        # pages (including one in flight) never exceed the depth, whatever the listing's size.
        queue: asyncio.Queue[Any] = asyncio.Queue()
        slots = asyncio.Semaphore(self._prefetch)
        producer = asyncio.create_task(self._produce(queue, slots))
        async with contextlib.aclosing(_drain(queue, producer)) as entries:
            async for entry in entries:
                slots.release()
                # Let the producer send the next request before this page's items are built.
                await asyncio.sleep(0)
                yield _ready(entry, done)

    async def _produce(self, queue: asyncio.Queue[Any], slots: asyncio.Semaphore) -> None:
        tokens = _Tokens(self._start)
        token = self._start
        try:
            while True:
                await slots.acquire()
                page = await _fetch_marked(self._fetch, token)
                queue.put_nowait(page)
                token = tokens.follow(page)
                if token is None:
                    break
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            queue.put_nowait(_Failure(error))
            return
        queue.put_nowait(_END)


class MergedPager(AsyncPager[T]):
    """Several pagers listed concurrently (bounded) and yielded as one stream.

    Used for partitioned listings: each part is a disjoint window, so the union has every item
    exactly once; items arrive in no global order. Pages are bounded per part by the prefetch
    depth of the shared queue.
    """

    def __init__(self, parts: Sequence[AsyncPager[T]], *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._parts = parts
        self._concurrency = concurrency

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        """Pages of all parts, interleaved as they arrive."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self._concurrency)
        gate = asyncio.Semaphore(self._concurrency)

        async def run(index: int, part: AsyncPager[T]) -> None:
            async with gate, contextlib.aclosing(part.pages()) as pages:
                async for page in pages:
                    await queue.put(attrs.evolve(page, part=index))

        async def run_all() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    for index, part in enumerate(self._parts):
                        group.create_task(run(index, part))
            except BaseExceptionGroup as failed:
                await queue.put(_Failure(failed.exceptions[0]))
                return
            await queue.put(_END)

        producer = asyncio.create_task(run_all())
        async with contextlib.aclosing(_drain(queue, producer)) as entries:
            async for page in entries:
                yield page
