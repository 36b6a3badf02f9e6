"""Every generated function keeps its source where tracebacks and `inspect` look for it."""

from __future__ import annotations

import inspect
import traceback

import pytest

from amili_async import _codegen, _request_checks, models, wire
from amili_async._cli._rows import row_cells
from amili_async.export._encode import line_encoder


def test_a_defined_function_shows_its_source_in_a_traceback() -> None:
    source = _codegen.Source({"limit": 3})
    source.emit(1, "if x > limit: raise ValueError('too big')")
    source.emit(1, "return x")
    check = source.function("check(x)", "test check", bind=True)
    assert check(2) == 2
    assert "raise ValueError('too big')" in inspect.getsource(check)
    with pytest.raises(ValueError, match="too big") as caught:
        check(4)
    assert "raise ValueError('too big')" in "".join(traceback.format_tb(caught.tb))


def test_the_same_label_twice_keeps_both_sources() -> None:
    first = _codegen.define("def f():\n    return 1\n", {}, "test twice")["f"]
    second = _codegen.define("def f():\n    return 2\n", {}, "test twice")["f"]
    assert "return 1" in inspect.getsource(first)
    assert "return 2" in inspect.getsource(second)


@pytest.mark.parametrize(
    "compiled",
    [
        lambda: _request_checks._checker(models.NewInvoice),
        lambda: _request_checks._reader(models.NewInvoice, False, False),
        lambda: wire._writer(models.NewInvoice, {}),
        lambda: row_cells(models.Invoice),
        lambda: line_encoder(models.Invoice),
    ],
    ids=["checker", "reader", "writer", "csv cells", "line encoder"],
)
def test_each_compiled_kind_has_findable_source(compiled: object) -> None:
    function = compiled()  # type: ignore[operator]
    assert inspect.getsource(function).startswith("def ")
