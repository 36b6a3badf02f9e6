"""The `amili-async` command line: sandbox, export, submit, demo.

Exit codes: 0 ok, 1 an API or usage error (one line on stderr, no traceback), 2 a bad or
missing argument (one line naming the flag, or the setting and its environment variable,
before any network call; see `_args`), 130 interrupted.
Credentials come from flags or AMILI_CLIENT_ID / AMILI_CLIENT_SECRET / AMILI_BASE_URL /
AMILI_ENVIRONMENT / AMILI_TOKEN_URL; they are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._client import AmiliClient
from .._config import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from .._version import __version__
from ..bulk import DEFAULT_CHUNK_SIZE, DEFAULT_CONCURRENCY
from ..errors import AmiliError, APIConnectionError, APITimeoutError
from ..export import ClientSettings
from ._args import (
    MAX_CHUNK_SIZE,
    MAX_PAGE_SIZE,
    Parser,
    add_verbose,
    delimiter,
    encoding,
    faults,
    hint_and_exit,
    input_file,
    integer,
    log_level,
    non_negative_float,
    output_file_or_url,
    positive_float,
    report_file,
    setup_logging,
    timestamp,
)
from ._progress import plural
from ._signals import Interrupted, interruptible
from ._units import add_arguments as add_unit_arguments
from ._units import check_arguments as check_unit_arguments
from ._units import export_units, interrupted_message
from ._webhooks import add_sandbox_options, add_webhooks_parser, run_webhooks, sandbox_settings

if TYPE_CHECKING:
    from ..sandbox import SandboxServer

CLI_RETRY_FOR = 300.0
"""Five minutes of retries for a failing request: a CLI job runs unattended, and a burst of
503s during a deploy must not end a 200k-invoice export that a human would simply resume."""


def _faults_help() -> str:
    from ..sandbox._faults import FAULT_SPEC_KEYS

    keys = "\n".join(f"  {key:<12} {meaning}" for key, meaning in FAULT_SPEC_KEYS.items())
    return (
        "fault spec keys (--faults key=value,...; probabilities 0..1 or 5%, summing to <= 1):\n"
        + keys
    )


def _webhook_secret_help() -> str:
    from ..sandbox import DEFAULT_WEBHOOK_SECRET

    return (
        f"\n\nwebhook deliveries are signed with --webhook-secret, by default the public "
        f"sandbox secret {DEFAULT_WEBHOOK_SECRET!r} (give it to `webhooks listen --secret`)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="amili-async", description="Amili AutoCollect from the command line.")
    parser.add_argument("--version", action="version", version=f"amili-async {__version__}")
    add_verbose(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sandbox = commands.add_parser(
        "sandbox",
        help="serve the embedded sandbox API",
        description="Serve the embedded sandbox API until interrupted (Ctrl-C). Its banner "
        "names the URLs, the client credentials, every organisation (with its seeded "
        "invoices) and the webhook secret; --json prints the same as one JSON object.",
        epilog=_faults_help() + _webhook_secret_help(),
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument(
        "--port", type=integer(0, 65535), default=8080, help="port to listen on (0: any free)"
    )
    sandbox.add_argument("--invoices", type=integer(0), default=1000, help="invoices to seed")
    sandbox.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    sandbox.add_argument(
        "--orgs", type=integer(1), default=1, help="organisations seeded, each with --invoices"
    )
    sandbox.add_argument(
        "--faults",
        type=faults,
        help="faults to inject, e.g. 429=0.05,503=0.01,latency=20ms,seed=42 (keys below)",
    )
    sandbox.add_argument(
        "--rate-limit",
        type=positive_float,
        help="requests per second per API client; over it the sandbox answers 429 with "
        "Retry-After (default: unlimited)",
    )
    sandbox.add_argument(
        "--log-requests",
        action="store_true",
        help="print one line per request on stderr: method, path, status, injected fault "
        "(never bodies, query strings or tokens)",
    )
    sandbox.add_argument(
        "--json",
        action="store_true",
        help="print the banner as one JSON object on stdout (for scripts)",
    )
    add_sandbox_options(sandbox)
    add_webhooks_parser(commands)

    auth = Parser(add_help=False)
    group = auth.add_argument_group("connection (defaults from AMILI_* environment variables)")
    group.add_argument("--environment", choices=["staging", "production"], help="Amili environment")
    group.add_argument("--base-url", help="API base URL (instead of --environment)")
    group.add_argument("--token-url", help="token endpoint (default: from the environment)")
    group.add_argument("--client-id", help="API client id")
    group.add_argument("--client-secret", help="prefer AMILI_CLIENT_SECRET: flags show in ps")
    add_verbose(auth)
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        help="seconds for each attempt of a request",
    )
    group.add_argument(
        "--max-retries",
        type=integer(0),
        default=DEFAULT_MAX_RETRIES,
        help="retries of a failing request",
    )
    group.add_argument(
        "--retry-for",
        type=non_negative_float,
        default=CLI_RETRY_FOR,
        help="keep retrying a failing request for up to this many seconds, past --max-retries "
        "(an unattended job rides out an outage; 0: only --max-retries)",
    )

    export = commands.add_parser(
        "export",
        parents=[auth],
        help="stream a listing to a file",
        description="Stream a listing to a JSON Lines or CSV file, resumable with --resume.",
    )
    export.add_argument(
        "what", choices=["invoices", "batches", "settlements", "cases"], help="what to list"
    )
    export.add_argument("--org", help="organization id (or --orgs-file)")
    export.add_argument(
        "--out",
        type=output_file_or_url(".jsonl", ".ndjson", ".csv"),
        help="FILE.jsonl or FILE.csv (CSV: the dotted columns `submit` reads); its directory "
        "must exist. With --orgs-file: the dataset's URL (s3://bucket/prefix)",
    )
    export.add_argument("--status", help="status filter (batches: state)")
    export.add_argument("--type", help="type filter")
    export.add_argument(
        "--from",
        dest="from_",
        type=timestamp,
        help="ISO 8601 date-time, UTC unless it says otherwise (settlements: a date)",
    )
    export.add_argument("--to", type=timestamp, help="ISO 8601 date-time (settlements: a date)")
    export.add_argument(
        "--page-size",
        type=integer(1, MAX_PAGE_SIZE),
        help=f"items per page, 1 to {MAX_PAGE_SIZE} (the API's limit; default: {MAX_PAGE_SIZE})",
    )
    export.add_argument(
        "--partitions",
        type=integer(1),
        help="list N time windows of --from/--to concurrently (invoices only)",
    )
    export.add_argument("--resume", action="store_true", help="continue an interrupted export")
    export.add_argument("--force", action="store_true", help="overwrite an existing output file")
    export.add_argument("--no-progress", action="store_true", help="no progress line")
    export.add_argument(
        "--csv-raw",
        action="store_true",
        help="CSV: write text cells as they are, for programs; by default a text cell "
        "beginning with = + - @ tab or CR gets a leading ' so no spreadsheet runs it as a "
        "formula (submit reads either back)",
    )
    add_unit_arguments(export)

    submit = commands.add_parser(
        "submit",
        parents=[auth],
        help="bulk create from a file",
        description="Bulk create from a file: every row is checked first, then sent in chunks; "
        "a report gets one line per row.",
    )
    submit.add_argument(
        "what", choices=["invoices", "payments", "corrections"], help="what to create"
    )
    submit.add_argument(
        "file",
        type=input_file(".csv", ".jsonl", ".ndjson"),
        help="FILE.csv (wire names, nested fields dotted: debtors.0.firstname) or FILE.jsonl",
    )
    submit.add_argument("--org", required=True, help="organization id")
    submit.add_argument("--report", type=report_file, help="default: FILE.report.csv")
    submit.add_argument(
        "--chunk-size",
        type=integer(1, MAX_CHUNK_SIZE),
        default=DEFAULT_CHUNK_SIZE,
        help=f"items per request, 1 to {MAX_CHUNK_SIZE}",
    )
    submit.add_argument(
        "--concurrency", type=integer(1), default=DEFAULT_CONCURRENCY, help="chunks in flight"
    )
    submit.add_argument(
        "--encoding",
        type=encoding,
        default="utf-8",
        help="text encoding of FILE: cp1252 for Excel's plain 'CSV' on Windows (Latin-1 too); "
        "a UTF-8 byte order mark is always accepted",
    )
    submit.add_argument(
        "--delimiter",
        type=delimiter,
        help="CSV separator, e.g. ';' or tab (default: sniffed from the header: , ; or tab)",
    )
    submit.add_argument("--no-progress", action="store_true", help="no progress line")
    submit.add_argument(
        "--fresh-keys",
        action="store_true",
        help="new idempotency keys: submit the file again as new items (by default a re-run "
        "of the same file creates nothing twice)",
    )

    demo = commands.add_parser(
        "demo",
        help="submit + export against the embedded sandbox",
        description="Submit and export against the embedded sandbox, no credentials needed.",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("demo-out"), help="directory for the demo's files"
    )
    demo.add_argument(
        "--invoices", type=integer(0), default=None, help="invoices to seed (default: 20,000)"
    )
    return parser


def _check_configured(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A setting a command needs and neither a flag nor its environment variable gives:
    exit 2 with one line naming both, like a bad argument, before any network call."""
    env = os.environ
    prog = f"{parser.prog} {args.command}"
    if args.command == "webhooks":
        from ._webhooks import SECRET_ENV

        if not (args.secret or env.get(SECRET_ENV)):
            hint_and_exit(f"{prog} {args.webhooks_command}", f"give --secret or set {SECRET_ENV}")
        return
    if args.command not in ("export", "submit") or getattr(args, "dask_scheduler", None):
        return  # the sandbox and the demo need nothing; Dask workers read their own AMILI_*
    if not (args.environment or args.base_url or env.get("AMILI_ENVIRONMENT")
            or env.get("AMILI_BASE_URL")):  # fmt: skip
        hint_and_exit(
            prog,
            "no API host: give --environment staging|production or --base-url "
            "(or set AMILI_ENVIRONMENT or AMILI_BASE_URL)",
        )
    missing = [
        flag
        for flag, value, name in (
            ("--client-id", args.client_id, "AMILI_CLIENT_ID"),
            ("--client-secret", args.client_secret, "AMILI_CLIENT_SECRET"),
        )
        if not (value or env.get(name))
    ]
    if missing:
        variables = " and ".join("AMILI_" + flag[2:].replace("-", "_").upper() for flag in missing)
        hint_and_exit(
            prog, f"credentials missing: give {' and '.join(missing)} (or set {variables})"
        )


def _check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Flags that are fine alone but not together: exit 2 like any other bad argument."""
    prog = f"{parser.prog} {args.command}"
    if args.command != "export":
        return
    check_unit_arguments(prog, args)
    if args.partitions and args.what != "invoices":
        hint_and_exit(prog, "--partitions: only supported for invoices")
    if args.partitions and (args.from_ is None or args.to is None):
        hint_and_exit(prog, "--partitions: needs --from and --to")
    if args.what == "settlements" and (args.status or args.type):
        hint_and_exit(prog, "--status/--type: settlements have no such filter")
    if args.resume and args.force:
        hint_and_exit(prog, "--resume and --force: choose one")


def _client(args: argparse.Namespace) -> AmiliClient:
    return _settings(args).connect()


def _settings(args: argparse.Namespace) -> ClientSettings:
    return ClientSettings(
        client_id=args.client_id,
        client_secret=args.client_secret,
        environment=args.environment,
        base_url=args.base_url,
        token_url=args.token_url or os.environ.get("AMILI_TOKEN_URL") or None,
        options={
            "timeout": args.timeout,
            "max_retries": args.max_retries,
            "retry_for": args.retry_for or None,
            "rate_limit": getattr(args, "export_rate_limit", None),
        },
    )


async def _run(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        from ..sandbox import SandboxConfig, make_orgs, serve_forever

        config = SandboxConfig(
            orgs=make_orgs(max(args.orgs, 2)),  # the second default org stays, as without --orgs
            seeded_orgs=args.orgs,
            host=args.host,
            port=args.port,
            invoices=args.invoices,
            seed=args.seed,
            faults=args.faults,
            rate_limit=args.rate_limit,
            log_requests=args.log_requests,
            **sandbox_settings(args),
        )
        await serve_forever(config, ready=_sandbox_banner(args.json))
        return 0
    if args.command == "webhooks":
        return await run_webhooks(args)
    if args.command == "demo":
        from ._demo import DEMO_INVOICES, run_demo

        await run_demo(args.out, invoices=DEMO_INVOICES if args.invoices is None else args.invoices)
        return 0
    if args.command == "export" and args.orgs_file is not None:
        return await export_units(args, _settings(args))
    async with _client(args) as client:
        if args.command == "export":
            from ._export import ExportOptions, export

            summary = await export(
                client,
                ExportOptions(
                    what=args.what,
                    organization_id=args.org,
                    out=args.out,
                    resume=args.resume,
                    status=args.status,
                    type=args.type,
                    from_=args.from_,
                    to=args.to,
                    page_size=args.page_size,
                    partitions=args.partitions,
                    progress=not args.no_progress,
                    force=args.force,
                    csv_raw=args.csv_raw,
                ),
            )
            resumed = f" (resumed at {summary.resumed_from:,})" if summary.resumed_from else ""
            print(f"exported {plural(summary.count, args.what)} to {summary.out}{resumed}")
            return 0
        from ._submit import Reading, submit

        result = await submit(
            client,
            args.what,
            args.org,
            args.file,
            report=args.report,
            chunk_size=args.chunk_size,
            concurrency=args.concurrency,
            progress=not args.no_progress,
            fresh_keys=args.fresh_keys,
            reading=Reading(args.encoding, args.delimiter),
        )
        print(
            f"{result.ok:,} succeeded, {result.failed:,} failed, {result.unknown:,} unknown; "
            f"report: {result.report}"
        )
        return 1 if result.failed or result.unknown else 0


def _sandbox_banner(as_json: bool) -> Callable[[SandboxServer], None]:
    """What `sandbox` prints once it serves: every organisation, not only the first (a
    multi-organisation export needs them all), and the webhook secret; or one JSON object."""

    def ready(server: SandboxServer) -> None:
        from ..sandbox import DEFAULT_WEBHOOK_SECRET
        from ..sandbox._requestlog import describe_faults

        config = server.config
        # The public default is shown; a secret of the user's own (--webhook-secret) never is.
        public = server.webhook_secret == DEFAULT_WEBHOOK_SECRET
        secret = server.webhook_secret if public else None
        orgs = [
            {"id": org.id, "name": org.name, "invoices": server.state.orgs[org.id].invoice_count}
            for org in config.orgs
        ]
        if as_json:
            print(json.dumps({
                "base_url": server.base_url,
                "token_url": server.token_url,
                "client_id": server.client_id,
                "client_secret": server.client_secret,
                "default_org_id": server.default_org_id,
                "orgs": orgs,
                "webhook_secret": secret,  # null: the one given with --webhook-secret
                "webhook_urls": list(config.webhook_urls),
            }), flush=True)  # fmt: skip
            return
        print(
            f"Amili sandbox: API {server.base_url}  token {server.token_url}  "
            f"client {server.client_id} / {server.client_secret}  org {server.default_org_id}\n"
            f"  {describe_faults(config.faults, config.rate_limit)}"
            f"{'; logging requests' if config.log_requests else ''}",
            flush=True,
        )
        for org in orgs:
            print(f"  org {org['id']}  {org['invoices']:,} invoices  {org['name']}", flush=True)
        webhooks = ", ".join(config.webhook_urls) or "none yet (POST /_sandbox/webhooks)"
        signed = f"secret {secret!r}" if public else "the --webhook-secret given"
        print(f"  webhooks signed with {signed}, sent to {webhooks}", flush=True)

    return ready


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check_combinations(parser, args)
    _check_configured(parser, args)
    verbose = getattr(args, "verbose", 0)
    setup_logging(log_level(parser, verbose, os.environ), verbose)
    try:
        return asyncio.run(interruptible(_run(args)))
    except Interrupted as stop:
        print(interrupted_message(args), file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:  # Ctrl-C before the loop ran, or where it takes no signals
        print(interrupted_message(args), file=sys.stderr)
        return 128 + signal.SIGINT
    except (AmiliError, ValueError, OSError) as error:
        for line in getattr(error, "details", ()):  # what to fix, one line each (submit)
            print(line, file=sys.stderr)
        print(f"amili-async: error: {_explained(error)}", file=sys.stderr)
        return 1


def _explained(error: BaseException) -> str:
    """The error's message; a failed connection also names the host and port it tried."""
    if type(error) in (APIConnectionError, APITimeoutError):
        url = urlsplit(error.url)  # type: ignore[attr-defined]
        port = url.port or (443 if url.scheme == "https" else 80)
        return f"{error} (connecting to {url.hostname}:{port})"
    return str(error)
