"""Each documented error status and the exception class the SDK raises for it."""

from __future__ import annotations

from amili_async import (
    APIStatusError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    LockedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerNotImplementedError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)

STATUS_CLASSES: list[tuple[int, type[APIStatusError]]] = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (403, PermissionDeniedError),
    (404, NotFoundError),
    (409, ConflictError),
    (422, UnprocessableEntityError),
    (423, LockedError),
    (429, RateLimitError),
    (500, InternalServerError),
    (501, ServerNotImplementedError),
    (502, BadGatewayError),
    (503, ServiceUnavailableError),
]
