"""Argument conventions of the command line, shared by every subcommand.

A bad argument ends the run before any network call with exit status 2 and one line naming the
flag (`amili-async: error: --from: not an ISO 8601 date-time: 'yesterday'`). Each check is an
argparse `type=` function raising ArgumentTypeError, so a subcommand added in its own module
gets the same behaviour by using these types; help shows every flag's default.
"""

from __future__ import annotations

import argparse
import codecs
import datetime as dt
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

# The largest page the API serves and the most items one write request takes (inferred, see
# docs/DESIGN.md; the sandbox enforces both).
MAX_PAGE_SIZE = 1000
MAX_CHUNK_SIZE = 1000
# Longest value echoed back in an error line: enough to recognise, short enough for one line.
SHOWN_VALUE_CHARS = 40


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every flag's default after its help (a flag without one says so in its own help);
    descriptions and epilogs (tables) kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        quiet = action.default in (None, False, argparse.SUPPRESS) or "default" in text
        if quiet or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (exit 2) and whose help shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # argparse says "argument --from: ..."; the flag itself is the clearest name.
        message = message.removeprefix("argument ")
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


LOG_ENV = "AMILI_LOG"
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
"""What AMILI_LOG may say. The default is info: one line per retry, so a failing request
never leaves a terminal silent for longer than one backoff."""


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """`-v/--verbose`, repeatable: -v every request (debug), -vv also aiohttp's and asyncio's."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help=f"more log lines on stderr: -v each request, -vv also the libraries' (default: "
        f"one line per retry; {LOG_ENV}=debug|info|warning sets the level too)",
    )


def log_level(parser: argparse.ArgumentParser, verbose: int, environ: Mapping[str, str]) -> int:
    """The package's log level: -v wins, then AMILI_LOG, else info; a bad AMILI_LOG exits 2."""
    if verbose:
        return logging.DEBUG
    value = environ.get(LOG_ENV, "").strip()
    if not value:
        return logging.INFO
    level = LOG_LEVELS.get(value.lower())
    if level is None:
        parser.error(f"{LOG_ENV}: expected one of {', '.join(LOG_LEVELS)}, got {shown(value)}")
    return level


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The command line's stderr handler: one per process, however often main() runs."""


def setup_logging(level: int, verbose: int) -> None:
    """Log lines to stderr as `amili-async: ...`: the package's at `level`; with -vv every
    library's at debug. Never bodies, queries or tokens (`_logging` decides what a line shows)."""
    handler = _CliHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("amili-async: %(message)s"))
    package = logging.getLogger("amili_async")
    root = logging.getLogger()
    for logger in (package, root):
        for old in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
            logger.removeHandler(old)
    package.setLevel(level)
    if verbose >= 2:
        root.setLevel(logging.DEBUG)
        root.addHandler(handler)
    else:
        package.addHandler(handler)


def shown(value: str) -> str:
    """`value` quoted and shortened for an error line."""
    if len(value) > SHOWN_VALUE_CHARS:
        value = value[: SHOWN_VALUE_CHARS - 1] + "\u2026"
    return repr(value)


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high]."""
    bounds = f"from {low} to {high}" if high is not None else f"at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {shown(text)}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, requests per second)."""
    return _number(text, 0.0, "greater than 0", above=True)


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (0 switches the feature off)."""
    return _number(text, 0.0, ">= 0", above=False)


def probability(text: str) -> float:
    """A probability, 0 to 1."""
    value = _number(text, 0.0, "a probability from 0 to 1", above=False)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {text}")
    return value


def _number(text: str, low: float, bound: str, *, above: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {shown(text)}") from None
    if not (value > low if above else value >= low) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
    return value


def timestamp(text: str) -> str:
    """An ISO 8601 date or date-time (kept as text: it identifies a resumable export)."""
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {shown(text)}") from None
    return text


def output_file(*suffixes: str) -> Callable[[str], Path]:
    """A file to write, with one of `suffixes`, in a directory that exists (never created)."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"{shown(text)}: use a {' or '.join(suffixes)} file name"
            )
        _parent_exists(path, text)
        return path

    return parse


def report_file(text: str) -> Path:
    """A report file to write, in a directory that exists."""
    path = Path(text)
    _parent_exists(path, text)
    return path


def input_file(*suffixes: str) -> Callable[[str], Path]:
    """An existing, readable file with one of `suffixes` (any name when none is given)."""

    def parse(text: str) -> Path:
        path = Path(text)
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{shown(text)}: use a {' or '.join(suffixes)} file")
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"{shown(text)}: no such file")
        return path

    return parse


def output_dir(text: str) -> Path:
    """A directory to write into: it may not exist yet, its parent must (never created)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{shown(text)}: not a directory")
    _parent_exists(path, text)
    return path


def is_url(text: str) -> bool:
    """True for `scheme://...` (an fsspec URL), False for a local path."""
    head, sep, _ = text.partition("://")
    return bool(sep) and head.isalnum()


def output_file_or_url(*suffixes: str) -> Callable[[str], Path | str]:
    """`output_file`, or a URL kept as text (the dataset root of a multi-organisation export;
    `_units.check_arguments` refuses it for a single-file export)."""
    local = output_file(*suffixes)

    def parse(text: str) -> Path | str:
        return text if is_url(text) else local(text)

    return parse


def output_location(text: str) -> Path | str:
    """A dataset root: a URL (kept as text, checked when opened) or a local directory."""
    return text if is_url(text) else output_dir(text)


def storage_option(text: str) -> tuple[str, str]:
    """`KEY=VALUE`, one storage option of the output's fsspec driver."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{shown(text)}: use KEY=VALUE")
    return key.strip(), value


def rate_limit(text: str) -> float | str:
    """`adaptive` (follow the server's 429s) or requests per second, a number > 0."""
    return "adaptive" if text.strip().lower() == "adaptive" else positive_float(text)


def _parent_exists(path: Path, text: str) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"{shown(text)}: directory {shown(str(parent))} does not exist (create it first)"
        )


def encoding(text: str) -> str:
    """A text encoding Python knows (`utf-8`, `cp1252`, `latin-1`...)."""
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(
            f"unknown encoding {shown(text)} (e.g. utf-8, cp1252, latin-1)"
        ) from None
    return text


# Names for a separator that is awkward to type on a command line.
_DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}


def delimiter(text: str) -> str:
    """One CSV separator character (`;`, `,`, `|`; `tab` for a tab)."""
    value = _DELIMITER_NAMES.get(text.lower(), text)
    if len(value) != 1 or value in '"\r\n' or value.isalnum():
        raise argparse.ArgumentTypeError(
            f"not a separator: {shown(text)} (one character such as ';' or ',', or 'tab')"
        )
    return value


def faults(text: str) -> Any:
    """A sandbox fault spec, parsed (see `amili-async sandbox --help`)."""
    from ..sandbox import FaultConfig

    try:
        return FaultConfig.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def hint_and_exit(prog: str, message: str) -> NoReturn:
    """A usage error found after parsing (two flags that do not go together): exit 2."""
    sys.stderr.write(f"{prog}: error: {message} (see {prog} --help)\n")
    raise SystemExit(2)
