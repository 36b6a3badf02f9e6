"""`amili-async webhooks listen` and the sandbox's `--webhook-url` / `--webhook-secret` flags.

`listen` serves `webhooks.webhook_handler` and prints each verified event as one line of JSON
on stdout (the typed event's wire form, or the raw payload of an unknown event), so it can be
piped into `jq`; its one status line goes to stderr. The secret comes from `--secret` or
AMILI_WEBHOOK_SECRET and is never printed. `--store PATH` remembers handled deliveries in an
SQLite file (restarts), `--store postgresql://...` in PostgreSQL (several replicas); without it
they are remembered in memory for the life of the process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from .. import wire
from ..webhooks import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CALLBACK_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_LEASE,
    MAX_CONNECTIONS,
    MemoryDedupeStore,
    PostgresDedupeStore,
    SqliteDedupeStore,
    UnknownEvent,
    WebhookEvent,
    WebhookReceiver,
)
from ._args import integer, positive_float, probability

__all__ = ["add_sandbox_options", "add_webhooks_parser", "run_webhooks", "sandbox_settings"]

SECRET_ENV = "AMILI_WEBHOOK_SECRET"


def add_sandbox_options(sandbox: argparse.ArgumentParser) -> None:
    """The `sandbox` command's webhook flags."""
    sandbox.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        metavar="URL",
        help="POST every webhook event to URL (repeatable; more via POST /_sandbox/webhooks)",
    )
    sandbox.add_argument(
        "--webhook-secret", help="secret the deliveries are signed with (default: public one)"
    )
    sandbox.add_argument(
        "--webhook-duplicates",
        type=probability,
        default=0.0,
        metavar="P",
        help="fault injection: send a delivery twice at once with probability P (0..1)",
    )


def sandbox_settings(args: argparse.Namespace) -> dict[str, Any]:
    """SandboxConfig keyword arguments from the `sandbox` command's webhook flags."""
    settings: dict[str, Any] = {
        "webhook_urls": tuple(args.webhook_url),
        "webhook_duplicates": args.webhook_duplicates,
    }
    if args.webhook_secret:
        settings["webhook_secret"] = args.webhook_secret
    return settings


def add_webhooks_parser(commands: Any) -> None:
    """The `webhooks` command and its `listen` subcommand."""
    webhooks = commands.add_parser("webhooks", help="receive Amili webhook deliveries")
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)
    listen = actions.add_parser("listen", help="print each verified event on one line")
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on")
    listen.add_argument(
        "--port", type=integer(0, 65535), default=8090, help="port to listen on (0: a free port)"
    )
    listen.add_argument("--path", default="/webhooks", help="path deliveries are POSTed to")
    listen.add_argument("--secret", help=f"prefer {SECRET_ENV}: flags show in ps")
    listen.add_argument(
        "--store",
        metavar="PATH|DSN",
        help="remember handled deliveries in this SQLite file, or in PostgreSQL at a "
        "postgresql:// DSN shared by replicas (default: in memory, forgotten on exit)",
    )
    listen.add_argument(
        "--lease",
        type=positive_float,
        default=DEFAULT_LEASE,
        metavar="S",
        help="seconds a claimed delivery stays busy before another handler may take it over",
    )
    listen.add_argument(
        "--header-timeout",
        type=positive_float,
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="S",
        help="seconds a connection may take to send its request headers",
    )
    listen.add_argument(
        "--body-timeout",
        type=positive_float,
        default=DEFAULT_BODY_TIMEOUT,
        metavar="S",
        help="seconds a request body may take to arrive (408 past it)",
    )
    listen.add_argument(
        "--callback-timeout",
        type=positive_float,
        default=DEFAULT_CALLBACK_TIMEOUT,
        metavar="S",
        help="seconds to print one event before answering 500",
    )
    listen.add_argument(
        "--max-connections",
        type=integer(1),
        default=MAX_CONNECTIONS,
        metavar="N",
        help="open connections at most (more are answered 503 and closed)",
    )


def _print_event(event: WebhookEvent | UnknownEvent) -> None:
    data = event.payload if isinstance(event, UnknownEvent) else event
    sys.stdout.write(wire.to_json(data).decode() + "\n")
    sys.stdout.flush()


SharedStore = SqliteDedupeStore | PostgresDedupeStore


def _store(location: str | None, lease: float) -> MemoryDedupeStore | SharedStore:
    if location is None:
        return MemoryDedupeStore(lease=lease)
    if location.startswith(("postgresql://", "postgres://")):
        return PostgresDedupeStore(location, lease=lease)
    return SqliteDedupeStore(location, lease=lease)


async def _open(store: SharedStore) -> None:
    """Open the store now, so a bad path or DSN ends the start, not every delivery."""
    try:
        await store.open()
    except Exception as error:
        raise ValueError(f"--store: cannot open it ({type(error).__name__}: {error})") from None


async def run_webhooks(args: argparse.Namespace) -> int:
    """Serve `webhooks listen` until interrupted."""
    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        raise ValueError(f"give --secret or set {SECRET_ENV}")
    store = _store(args.store, args.lease)
    try:
        receiver = WebhookReceiver(
            secret=secret,
            on_event=_print_event,
            host=args.host,
            port=args.port,
            path=args.path,
            keep=False,  # printed, not kept: a listener may run for days
            dedupe=store,
            body_timeout=args.body_timeout,
            callback_timeout=args.callback_timeout,
            header_timeout=args.header_timeout,
            max_connections=args.max_connections,
        )
        if isinstance(store, SharedStore):
            await _open(store)
        async with receiver:
            print(f"listening for Amili webhooks on {receiver.url}", file=sys.stderr, flush=True)
            await asyncio.Event().wait()
    finally:
        if isinstance(store, SharedStore):
            await store.close()
    return 0
