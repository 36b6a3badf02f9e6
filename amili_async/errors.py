"""Exceptions raised by the SDK, one class per HTTP status worth catching on its own.

Only the classes and the status -> class table live here: building an error from an answer
(parsing a ProblemDetails body, the bounded and masked summary in the message, Retry-After)
is the response pipeline's job (:mod:`amili_async._response`), so this module imports nothing
of the SDK but its settings and its log-line helpers.

Messages name the method, the path (never the query: it can carry personal data), the request
id and the server's own explanation; never a token, a secret, the request body or the raw
response body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from multidict import CIMultiDict, CIMultiDictProxy

from amili_async._config import REQUEST_ID_HEADER
from amili_async._logging import path_of, strip_query

__all__ = [
    "STATUS_CLASSES",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AmiliError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "BatchWaitTimeoutError",
    "ClientClosedError",
    "ConflictError",
    "ErrorResponse",
    "InternalServerError",
    "LockedError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitWaitTimeoutError",
    "RepeatedPageTokenError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "ServerNotImplementedError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
]


def _restore(cls: type[AmiliError], args: tuple[Any, ...]) -> AmiliError:
    """Unpickle helper: rebuild without calling ``__init__`` (its signature is keyword-only)."""
    error = cls.__new__(cls)
    error.args = args
    return error


class AmiliError(Exception):
    """Base of every exception the SDK raises (StructureError from amili_async._serde too)."""

    resume_token: str | None = None
    """Set by the pagination layer: the page token to resume an interrupted listing from."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args), self.__dict__)


class APIConnectionError(AmiliError):
    """The request never got an HTTP answer: DNS, connect, reset or truncated body."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = strip_query(url)


class APITimeoutError(APIConnectionError):
    """The request did not complete within its timeout (or its call's deadline)."""


class ClientClosedError(AmiliError):
    """The client was closed (`aclose()`) before or while this call was made."""


class RateLimitWaitTimeoutError(APITimeoutError):
    """The client-side rate limiter could not let this attempt start within the call's
    deadline or timeout: the attempt was not sent (it fails at once instead of waiting)."""


class ResponseTooLargeError(AmiliError):
    """The answer's body passed ``max_response_size`` (decoded bytes); it was dropped unread
    past the limit. Not a connection error: the same request would get the same answer, so
    the SDK never retries it (and neither should code that retries connection errors)."""

    def __init__(self, message: str, *, method: str, url: str, limit: int) -> None:
        super().__init__(message)
        self.method = method
        self.url = strip_query(url)
        self.limit = limit


class RepeatedPageTokenError(AmiliError):
    """A listing answered with a page token it had already given: following it would loop.

    ``resume_token`` is the token of the page that repeated it.
    """


class ErrorResponse:
    """What an :class:`APIStatusError` shows of the answer: status, headers, request method
    and path, request id. Read-only, and holds no body; its repr shows no header (a server
    may echo credentials in one)."""

    __slots__ = ("_error",)

    def __init__(self, error: APIStatusError) -> None:
        self._error = error

    @property
    def status_code(self) -> int:
        return self._error.status_code

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The answer's headers, case-insensitive and read-only."""
        return CIMultiDictProxy(self._error.headers)

    @property
    def method(self) -> str:
        """The request's method."""
        return self._error.method

    @property
    def url(self) -> str:
        """The request URL without its query string."""
        return self._error.url

    @property
    def path(self) -> str:
        """The request's path (what messages show)."""
        return path_of(self._error.url)

    @property
    def request_id(self) -> str | None:
        return self._error.request_id

    def __repr__(self) -> str:
        return (
            f"ErrorResponse(status_code={self.status_code}, method={self.method!r}, "
            f"path={self.path!r}, request_id={self.request_id!r})"
        )


class APIStatusError(AmiliError):
    """The server answered with a 4xx or 5xx status."""

    status_code: int
    headers: CIMultiDict[str]
    request_id: str | None
    body: Any
    """The parsed JSON body (usually ProblemDetails), None when it was not JSON."""
    text: str
    method: str
    url: str
    retry_after: float | None
    """Seconds the server asked us to wait (Retry-After), None when it did not say."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: Mapping[str, str],
        body: Any,
        text: str,
        method: str,
        url: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        # A plain CIMultiDict copy: case-insensitive like the original, and picklable.
        self.headers = CIMultiDict(headers)
        self.request_id = self.headers.get(REQUEST_ID_HEADER)
        self.body = body
        self.text = text
        self.method = method
        self.url = strip_query(url)
        self.retry_after = retry_after

    @property
    def response(self) -> ErrorResponse:
        """The answer as a small read-only view (status, headers, method, path, request id)."""
        return ErrorResponse(self)


class BadRequestError(APIStatusError):
    """400: the request is malformed (for the API: a body that is not JSON)."""


class AuthenticationError(APIStatusError):
    """401, or the token endpoint refused the client credentials."""


class PermissionDeniedError(APIStatusError):
    """403: authenticated, but not allowed to act on this organization or resource."""


class NotFoundError(APIStatusError):
    """404: no such organization, invoice, batch, case or settlement."""


class ConflictError(APIStatusError):
    """409: the resource's state forbids the action (an illegal case transition)."""


class UnprocessableEntityError(APIStatusError):
    """422: well-formed JSON that violates the schema."""


class LockedError(APIStatusError):
    """423: the resource is locked by another operation."""


class RateLimitError(APIStatusError):
    """429: too many requests."""


class InternalServerError(APIStatusError):
    """500: the server failed."""


class ServerNotImplementedError(APIStatusError):
    """501: the server does not support this operation."""


class BadGatewayError(APIStatusError):
    """502: a proxy in front of the API got no valid answer."""


class ServiceUnavailableError(APIStatusError):
    """503: the service is down or overloaded."""


class ResponseDecodeError(AmiliError):
    """A successful response whose body is not JSON or not the documented shape.

    ``body_snippet`` keeps the start of the body for debugging; it stays out of ``str()``
    because it may hold personal data. It is never chained to the parser's error, whose text
    can quote the offending value: the message names the path and the expected type instead.
    """

    status_code: int
    request_id: str | None
    body_snippet: str
    method: str
    url: str

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None,
        body_snippet: str,
        method: str,
        url: str,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.body_snippet = body_snippet
        self.method = method
        self.url = strip_query(url)


# The status -> class table, applied by `_response.error_for_response`; any other status
# raises the plain APIStatusError.
STATUS_CLASSES: Final[Mapping[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    423: LockedError,
    429: RateLimitError,
    500: InternalServerError,
    501: ServerNotImplementedError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
}


class BatchWaitTimeoutError(AmiliError):
    """A batch was still not finished (SUCCESS, PARTIAL or FAILED) when the wait timed out.

    ``batch`` is the last state seen; waiting again later is safe.
    """

    batch: Any
    """The last ``models.Batch`` seen (typed loosely: this module sits below the models)."""

    def __init__(self, message: str, *, batch: Any) -> None:
        super().__init__(message)
        self.batch = batch
