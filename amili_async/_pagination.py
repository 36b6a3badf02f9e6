"""Async iteration over token-paged listings, with prefetch, resume and partitions.

A listing is described by a :class:`Source` that the resource builds with its filters and page
size already bound, so every page request carries them: how to fetch a page, read it (parse,
next token) and build its items. The pager only moves tokens (it never knows the endpoint's
spelling of its token parameter) and decides when pages are read, built and let go.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterator,
    Sequence,
)
from typing import Any, Generic, Protocol, TypeVar

import attrs

from . import _gc
from ._tasks import cancel_and_wait
from .errors import AmiliError, RepeatedPageTokenError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
U = TypeVar("U")

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
class RawPage:
    """A page read just far enough to know the next token: its parsed document, not yet built.

    ``answer`` is what the source's `fetch` returned (the response), for the build's errors.
    """

    answer: Any = attrs.field(repr=False)
    document: Any = attrs.field(repr=False)
    next_page_token: str | None


class Source(Protocol[T_co]):
    """What a resource tells a pager about one listing: the pager only moves tokens and owns
    when pages are read, built and let go (see :class:`_Ledger`)."""

    async def fetch(self, token: str | None) -> Any:
        """The answer for the page at `token` (None: the first page)."""
        ...

    def read(self, answer: Any) -> RawPage:
        """The answer parsed: its document and the next page's token."""
        ...

    def build(self, page: RawPage) -> Sequence[T_co]:
        """The page's items (models), from its document."""
        ...


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


@attrs.define(slots=True, eq=False)
class _Entry(Generic[T]):
    """A page read and waiting to be taken; taking it frees the slots it holds, building it
    takes its page out (None afterwards), so no frame that saw the entry keeps the document."""

    raw: RawPage | None
    token: str | None
    source: Source[T]
    part: int | None
    slots: tuple[asyncio.Semaphore, ...] = ()


class _Ledger:
    """The pager's side of cyclic GC while streaming: one per iteration, the only owner.

    The collector counts allocations minus deallocations and runs when the count passes its
    threshold. A page parsed (~12k containers) and its models built (~7k objects) all survive
    their step, so counted as they are they would make the collector run over them again and
    again, pushing them into the old generations that full collections walk. So each step runs
    in a GC pause (`_gc.paused`) that also lets go of the previous page's equivalent: a read
    frees the document of the page built before it; a build frees the page the item stream
    finished (`finished`). The count stays balanced and no collection runs merely because
    pages stream. (A `pages()` caller holds the previous page itself while asking for the
    next, so only its document is balanced there.)

    Reads run ahead of builds by at most the read-ahead depth (the prefetch slots, or a
    merged listing's shared gate), so the documents kept for reads to free plus the pages
    read and waiting never exceed that depth: keeping them costs no more than reading ahead.
    """

    __slots__ = ("documents", "page")

    def __init__(self) -> None:
        self.documents: list[Any] = []
        """Documents of built pages, each freed by a later read."""
        self.page: Page[Any] | None = None
        """The page the item stream has finished, freed by the next build."""

    def read(self, source: Source[T], answer: Any, token: str | None) -> RawPage:
        """The answer parsed, in a pause that frees the last built page's document."""
        with _resume_at(token), _gc.paused():
            raw = source.read(answer)
            if self.documents:
                self.documents.pop()
        return raw

    def build(self, entry: _Entry[T]) -> Page[T]:
        """The entry's items built, in a pause that frees the finished page; its document is
        kept for the next read to free (so the caller must let go of the entry)."""
        raw, entry.raw = entry.raw, None
        assert raw is not None, "an entry is built once"
        with _resume_at(entry.token), _gc.paused():
            items = entry.source.build(raw)
            self.page = None
            self.documents.append(raw.document)
        return Page(items, raw.next_page_token, entry.token, entry.part)

    def finished(self, page: Page[Any]) -> None:
        """The item stream is done with `page`: the ledger holds it until the next build."""
        self.page = page


class _Tokens:
    """The page tokens one listing has followed: a token seen again would loop forever."""

    __slots__ = ("_seen",)

    def __init__(self, start: str | None) -> None:
        self._seen = {start} if start else set()

    def follow(self, next_token: str | None, token: str | None) -> str | None:
        """The next token to fetch, None at the end; RepeatedPageTokenError on a repeat."""
        if not next_token:
            return None
        if next_token in self._seen:
            error = RepeatedPageTokenError(
                "the server answered a page token this listing had already followed; "
                "following it again would repeat pages forever"
            )
            error.resume_token = token
            raise error
        self._seen.add(next_token)
        return next_token


Put = Callable[[Any], None]


class AsyncPager(Generic[T]):
    """A listing: `async for item in pager`, `async for page in pager.pages()`, `collect()`.

    Subclasses say how pages are fetched and read (`_produce`); taking, building and
    letting go of pages is shared, so items and pages stream alike.
    """

    async def _produce(
        self, put: Put, ledger: _Ledger, gate: asyncio.Semaphore | None, part: int | None
    ) -> None:
        """Fetch and read pages, `put` each as an `_Entry` holding its slots (and `gate`)."""
        raise NotImplementedError

    def restaged(self, wrap: Callable[[Source[T]], Source[U]]) -> AsyncPager[U]:
        """This listing with its pages read and built by `wrap(source)` instead (the export
        writes pages as JSON Lines straight from their documents): the same fetches, tokens,
        prefetch and GC pauses. Listings that are not one source's refuse (TypeError)."""
        raise TypeError(f"{type(self).__name__} cannot change how its pages are built")

    async def _entries(self, ledger: _Ledger) -> AsyncGenerator[_Entry[T], None]:
        """The entries a producer task reads ahead, each taken (its slots freed) in turn."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        producer = asyncio.create_task(self._run(queue, ledger))
        async with contextlib.aclosing(_drain(queue, producer)) as entries:
            async for entry in entries:
                for slot in entry.slots:
                    slot.release()
                # Let the producer send the next request before this page's items are built.
                await asyncio.sleep(0)
                yield entry
                del entry  # the ledger owns its document now

    async def _run(self, queue: asyncio.Queue[Any], ledger: _Ledger) -> None:
        try:
            await self._produce(queue.put_nowait, ledger, None, None)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            queue.put_nowait(_Failure(error))
            return
        queue.put_nowait(_END)

    async def _built(self, ledger: _Ledger) -> AsyncGenerator[Page[T], None]:
        async with contextlib.aclosing(self._entries(ledger)) as entries:
            async for entry in entries:
                page = ledger.build(entry)
                del entry
                yield page
                del page

    def pages(self) -> AsyncGenerator[Page[T], None]:
        """Yield whole pages (`.items`, `.next_page_token`, `.token`, `.part`)."""
        return self._built(_Ledger())

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncGenerator[T, None]:
        ledger = _Ledger()
        async with contextlib.aclosing(self._built(ledger)) as pages:
            async for page in pages:
                for item in page.items:
                    yield item
                # Its only holder now: the next build frees it.
                ledger.finished(page)
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
            del entry
    finally:
        await cancel_and_wait([producer])


class TokenPager(AsyncPager[T]):
    """A token-paged listing: `async for item in pager`, `pager.pages()`, `pager.collect()`.

    Start from a saved token with `page_token=`; an error raised mid-listing carries
    `.resume_token`, the token to pass back to continue with nothing lost and nothing repeated.
    """

    def __init__(
        self, source: Source[T], *, page_token: str | None = None, prefetch: int = DEFAULT_PREFETCH
    ) -> None:
        if prefetch < 0:
            raise ValueError("prefetch must be >= 0")
        self._source = source
        self._start = page_token
        self._prefetch = prefetch

    def restaged(self, wrap: Callable[[Source[T]], Source[U]]) -> TokenPager[U]:
        return TokenPager(wrap(self._source), page_token=self._start, prefetch=self._prefetch)

    def _entries(self, ledger: _Ledger) -> AsyncGenerator[_Entry[T], None]:
        return super()._entries(ledger) if self._prefetch else self._in_turn(ledger)

    async def _in_turn(self, ledger: _Ledger) -> AsyncGenerator[_Entry[T], None]:
        """Without prefetch: each page fetched and read only when the caller asks for it."""
        tokens = _Tokens(self._start)
        token = self._start
        while True:
            raw = await self._fetch_and_read(ledger, token)
            yield _Entry(raw, token, self._source, None)
            token = tokens.follow(raw.next_page_token, token)
            del raw
            if token is None:
                return

    async def _fetch_and_read(self, ledger: _Ledger, token: str | None) -> RawPage:
        with _resume_at(token):
            answer = await self._source.fetch(token)
        return ledger.read(self._source, answer, token)

    async def _produce(
        self, put: Put, ledger: _Ledger, gate: asyncio.Semaphore | None, part: int | None
    ) -> None:
        # Runs at most `prefetch` pages ahead of the caller (at least one inside a merged
        # listing): it takes a slot before each fetch and the caller frees it on taking the
        # page, so fetched-but-not-taken pages (including one in flight) never exceed the
        # depth, whatever the listing's size. `gate`, shared by a merged listing's parts,
        # bounds the pages read and waiting across all of them (a read page is ~5 MB).
        slots = asyncio.Semaphore(max(1, self._prefetch))
        held = (slots,) if gate is None else (slots, gate)
        tokens = _Tokens(self._start)
        token = self._start
        while True:
            await slots.acquire()
            with _resume_at(token):
                answer = await self._source.fetch(token)
            if gate is not None:
                await gate.acquire()
            raw = ledger.read(self._source, answer, token)
            del answer
            put(_Entry(raw, token, self._source, part, held))
            token = tokens.follow(raw.next_page_token, token)
            del raw
            if token is None:
                return


MERGED_READ_AHEAD = 2
"""Pages read and waiting for the caller across all parts of a merged listing: one being
built while the next waits keeps the caller busy; every part may still have its request in
flight (an answer not yet read costs its bytes, ~1.3 MB a 1,000-invoice page, not ~5 MB)."""


class MergedPager(AsyncPager[T]):
    """Several pagers listed concurrently (bounded) and yielded as one stream.

    Used for partitioned listings: each part is a disjoint window, so the union has every item
    exactly once; items arrive in no global order. Pages read and not yet taken are bounded
    across all parts (`MERGED_READ_AHEAD`), and are built as they are taken, with one
    ledger for the whole stream, so memory and GC stay as flat as a single listing's.
    """

    def __init__(self, parts: Sequence[AsyncPager[T]], *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._parts = parts
        self._concurrency = concurrency

    async def _produce(
        self, put: Put, ledger: _Ledger, gate: asyncio.Semaphore | None, part: int | None
    ) -> None:
        shared = gate or asyncio.Semaphore(MERGED_READ_AHEAD)
        running = asyncio.Semaphore(self._concurrency)

        async def run(index: int, pager: AsyncPager[T]) -> None:
            async with running:
                await pager._produce(put, ledger, shared, index)

        try:
            async with asyncio.TaskGroup() as group:
                for index, pager in enumerate(self._parts):
                    group.create_task(run(index, pager))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
