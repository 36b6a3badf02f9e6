"""Generated Python functions: their source, the values they take in, and where it is kept.

Every compiled reader, checker, writer and encoder of the SDK is written through here, so each
one's source is registered in `linecache` (as attrs and cattrs do): tracebacks show its lines
and `inspect.getsource` finds it.
"""

from __future__ import annotations

import itertools
import linecache
from typing import Any

__all__ = ["Source", "define"]

_generated = itertools.count()


def define(source: str, namespace: dict[str, Any], label: str) -> dict[str, Any]:
    """Run the definitions in ``source`` in ``namespace`` (filled by them); the namespace.

    The source is kept under the file name ``<amili_async generated {label}>`` (another of its
    own when the label is taken: a class compiled again for another converter).
    """
    name = f"<amili_async generated {label}>"
    if name in linecache.cache:
        name = f"{name[:-1]}-{next(_generated)}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    exec(compile(source, name, "exec"), namespace)  # our own generated source
    return namespace


class Source:
    """One function being written: its lines, fresh variable names, and the values it takes
    from outside, one name per object."""

    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = dict(namespace or {})
        self._refs: dict[int, str] = {}
        self.count = 0

    def var(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def ref(self, value: Any) -> str:
        """The name under which `value` is passed into the function (one per object)."""
        name = self._refs.get(id(value))
        if name is None:
            name = self._refs[id(value)] = f"k{len(self._refs)}"
            self.namespace[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def function(self, signature: str, label: str, *, bind: bool = False) -> Any:
        """``def signature:`` over the lines written; the function. ``bind``: every value of
        the namespace also a default argument (a local is read faster than a global)."""
        name, _, parameters = signature.partition("(")
        if bind:
            bound = ", ".join(f"{key}={key}" for key in self.namespace)
            signature = f"{name}({parameters[:-1]}, {bound})"
        source = "\n".join([f"def {signature}:", *self.lines]) + "\n"
        return define(source, self.namespace, label)[name]
