"""Forward-compatible string enums for the generated models.

Amili adds enum values without notice (the docs publish almost no complete enum list), so a
value the spec does not know must never fail a listing. `OpenEnum` turns such a value into a
pseudo-member that carries the raw string, compares equal to it and serialises back unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class OpenEnum(StrEnum):
    """A `StrEnum` that accepts unknown string values as pseudo-members."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """True when the value is one the spec lists, False for a pseudo-member."""
        return self._name_ in type(self).__members__
