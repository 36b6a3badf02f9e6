"""What resources hand the transport: plain values, no aiohttp."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Final

import attrs
import msgspec


@attrs.frozen
class RequestOptions:
    """Per-call overrides of the client's defaults."""

    timeout: float | None = None
    """Timeout of each attempt in seconds, from the moment it has a connection slot."""
    deadline: float | None = None
    """Seconds for the whole call: every attempt, wait for a connection and retry wait."""
    idempotency_key: str | None = None
    """Sent as the IdempotencyKey of a POST instead of a generated one (reuse it to dedupe)."""
    max_retries: int | None = None
    """Retries for this call instead of the client's policy."""
    retry_for: float | None = None
    """Seconds from the call's start during which retries go on past max_retries."""
    extra_headers: Mapping[str, str] | None = None
    """Additional request headers; the SDK's own (Authorization, IdempotencyKey...) win."""
    retry_posts: bool | None = None
    """False: a POST is sent once (no retry but the token refresh), whatever max_retries says."""

    def over(self, defaults: RequestOptions) -> RequestOptions:
        """These options where set, ``defaults`` (the client's) elsewhere; headers merge."""
        if defaults is DEFAULT_OPTIONS:
            return self
        if self is DEFAULT_OPTIONS:
            return defaults
        headers = (
            {**defaults.extra_headers, **self.extra_headers}
            if defaults.extra_headers and self.extra_headers
            else self.extra_headers or defaults.extra_headers
        )
        return RequestOptions(
            timeout=defaults.timeout if self.timeout is None else self.timeout,
            deadline=defaults.deadline if self.deadline is None else self.deadline,
            retry_posts=defaults.retry_posts if self.retry_posts is None else self.retry_posts,
            idempotency_key=self.idempotency_key,  # per call by nature: never a default
            max_retries=defaults.max_retries if self.max_retries is None else self.max_retries,
            retry_for=defaults.retry_for if self.retry_for is None else self.retry_for,
            extra_headers=headers,
        )


# Shared default: RequestOptions is frozen, so one instance serves every request.
DEFAULT_OPTIONS: Final = RequestOptions()


def check_header_value(name: str, value: str) -> str:
    """``value`` if it can travel in a header; CR or LF would let it forge other headers."""
    if "\r" in value or "\n" in value:
        # The value itself stays out of the message: it may be a credential.
        raise ValueError(f"the {name} header value contains a CR or LF character")
    return value


class Request(msgspec.Struct, frozen=True):
    """One API call as a resource describes it (a msgspec Struct: one per call, built in C).

    ``path`` is URL-quoted and relative to the API base URL, or to the origin of that URL
    when ``root`` is set (the legacy ``/webapi`` paths). ``params`` values are wire strings.
    """

    method: str
    path: str
    params: Mapping[str, str] | None = None
    body: bytes | None = None
    content_type: str | None = None
    root: bool = False
    options: RequestOptions = DEFAULT_OPTIONS


def encode_multipart(
    fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    """Encode a ``multipart/form-data`` body; returns the bytes and the Content-Type.

    ``files`` maps a part name to ``(filename, content, content type)``. The boundary is a
    random UUID: 122 random bits make a collision with file content practically impossible.
    """
    boundary = uuid.uuid4().hex
    delimiter = f"--{boundary}\r\n".encode("ascii")
    chunks: list[bytes] = []
    for name, value in fields.items():
        chunks += (
            delimiter,
            f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode(),
            value.encode(),
            b"\r\n",
        )
    for name, (filename, content, content_type) in files.items():
        chunks += (
            delimiter,
            (
                f'Content-Disposition: form-data; name="{_quote(name)}"; '
                f'filename="{_quote(filename)}"\r\n'
                f"Content-Type: {_quote(content_type)}\r\n\r\n"
            ).encode(),
            content,
            b"\r\n",
        )
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


# The escaping browsers apply to names in a Content-Disposition header (WHATWG HTML).
_HEADER_ESCAPES: Final = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


def _quote(value: str) -> str:
    return value.translate(_HEADER_ESCAPES)
