"""The root of the SDK's exceptions, in a module of its own so that every layer (the serde
layer's StructureError included) can derive from it without importing errors.py."""

from __future__ import annotations

from typing import Any


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


AmiliError.__module__ = "amili_async.errors"  # its public home (re-exported there)
