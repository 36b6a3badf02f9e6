"""The one JSON engine (msgspec), behind the few calls every module uses: loads, dumps, Fragment.

Why msgspec (issue 24, measured in docs/DESIGN.md "JSON engine"): it reads JSON numbers into
Decimal from their text in C (`4500.10` stays `Decimal('4500.10')`) and decodes a page straight
into typed containers (`_structure_compiler.mirror`), so a listing page costs ~1.5x a bare parse
instead of ~2.3x. Nothing else imports msgspec for plain JSON; `_serde` uses its typed decoders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

__all__ = ["DecodeError", "Fragment", "dumps", "loads", "loads_exact"]

Fragment = msgspec.Raw
"""Bytes written verbatim into the output (an exact number, already encoded JSON)."""


class DecodeError(ValueError):
    """The bytes are not JSON. ``pos`` is the byte where reading failed (-1 when unknown).

    The message never quotes the document (it can hold personal data or a credential).
    """

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


_BYTE = re.compile(r"\(byte (\d+)\)")
_PLAIN = msgspec.json.Decoder()
# Untyped floats as exact Decimals, from their text (never through a float).
_EXACT = msgspec.json.Decoder(float_hook=Decimal)


def decode_error(error: msgspec.DecodeError) -> DecodeError:
    """Our error for msgspec's (its message says where, never what)."""
    found = _BYTE.search(str(error))
    return DecodeError(f"not valid JSON: {error}", int(found.group(1)) if found else -1)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | str) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as error:
        raise decode_error(error) from None
    except RecursionError:  # nested deeper than the interpreter's stack allows
        raise DecodeError("not valid JSON: nested too deeply", -1) from None


def loads(data: bytes | str) -> Any:
    """JSON -> plain data (dict, list, str, int, float, bool, None)."""
    return _decode(_PLAIN, data)


def loads_exact(data: bytes | str) -> Any:
    """JSON -> plain data with every non-integer number an exact Decimal (any size)."""
    return _decode(_EXACT, data)


def _encoder(default: Callable[[Any], Any] | None, sort_keys: bool) -> msgspec.json.Encoder:
    # Decimal as a JSON number, written from its own text: Decimal("4500.10") -> 4500.10.
    return msgspec.json.Encoder(
        enc_hook=default, decimal_format="number", order="sorted" if sort_keys else None
    )


_ENCODERS: dict[tuple[Callable[[Any], Any] | None, bool], msgspec.json.Encoder] = {}
"""One encoder per (`default`, `sort_keys`): making one costs more than encoding a small item."""
_ENCODERS_SIZE = 64
"""Encoders kept at most: the SDK passes a handful of module-level defaults; a caller making a
new function per call must not grow this without bound (emptied when full)."""


def dumps(
    obj: Any,
    *,
    default: Callable[[Any], Any] | None = None,
    sort_keys: bool = False,
    indent: int | None = None,
) -> bytes:
    """Plain data -> compact JSON bytes (``indent``: pretty, for files people read).

    ``default`` turns what JSON has no type for into something it has (or a Fragment);
    what it raises propagates. Decimals go out as exact numbers.
    """
    encoder = _ENCODERS.get((default, sort_keys))
    if encoder is None:
        if len(_ENCODERS) >= _ENCODERS_SIZE:
            _ENCODERS.clear()
        encoder = _ENCODERS[default, sort_keys] = _encoder(default, sort_keys)
    out = encoder.encode(obj)
    return out if indent is None else msgspec.json.format(out, indent=indent)
