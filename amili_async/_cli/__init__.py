"""The `amili-async` command line: sandbox, export, submit, demo.

Exit codes: 0 ok, 1 an API or usage error (one line on stderr, no traceback), 2 bad arguments
(argparse), 130 interrupted. Credentials come from flags or AMILI_CLIENT_ID /
AMILI_CLIENT_SECRET / AMILI_BASE_URL / AMILI_ENVIRONMENT / AMILI_TOKEN_URL; they are never
printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .._client import AmiliClient
from .._config import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from .._version import __version__
from ..bulk import DEFAULT_CHUNK_SIZE, DEFAULT_CONCURRENCY
from ..errors import AmiliError
from ..export import ClientSettings
from ._units import add_arguments as add_unit_arguments
from ._units import check_arguments as check_unit_arguments
from ._units import export_units
from ._webhooks import add_sandbox_options, add_webhooks_parser, run_webhooks, sandbox_settings

CLI_RETRY_FOR = 300.0
"""Five minutes of retries for a failing request: a CLI job runs unattended, and a burst of
503s during a deploy must not end a 200k-invoice export that a human would simply resume."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amili-async", description="Amili AutoCollect from the command line."
    )
    parser.add_argument("--version", action="version", version=f"amili-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    sandbox = commands.add_parser("sandbox", help="serve the embedded sandbox API")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080)
    sandbox.add_argument("--invoices", type=int, default=1000, help="invoices to seed")
    sandbox.add_argument("--seed", type=int, default=1)
    sandbox.add_argument(
        "--orgs", type=int, default=1, help="organisations seeded, each with --invoices invoices"
    )
    sandbox.add_argument("--faults", help="e.g. 429=0.05,503=0.01,latency=20ms,seed=42")
    sandbox.add_argument(
        "--rate-limit",
        type=float,
        help="requests per second per API client; over it the sandbox answers 429 with "
        "Retry-After (default: unlimited)",
    )
    add_sandbox_options(sandbox)
    add_webhooks_parser(commands)

    auth = argparse.ArgumentParser(add_help=False)
    group = auth.add_argument_group("connection (defaults from AMILI_* environment variables)")
    group.add_argument("--environment", choices=["staging", "production"])
    group.add_argument("--base-url")
    group.add_argument("--token-url")
    group.add_argument("--client-id")
    group.add_argument("--client-secret", help="prefer AMILI_CLIENT_SECRET: flags show in ps")
    group.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds for each attempt of a request (default: %(default)s)",
    )
    group.add_argument(
        "--max-retries",
        type=int,
        default=DEFAULT_MAX_RETRIES,
        help="retries of a failing request (default: %(default)s)",
    )
    group.add_argument(
        "--retry-for",
        type=float,
        default=CLI_RETRY_FOR,
        help="keep retrying a failing request for up to this many seconds, past --max-retries "
        "(default: %(default)s: an unattended job rides out an outage)",
    )

    export = commands.add_parser("export", parents=[auth], help="stream a listing to a file")
    export.add_argument("what", choices=["invoices", "batches", "settlements", "cases"])
    export.add_argument("--org", help="organization id")
    export.add_argument("--out", type=Path, help="FILE.jsonl or FILE.csv")
    export.add_argument("--status")
    export.add_argument("--type")
    export.add_argument("--from", dest="from_", help="ISO 8601 date-time (dates: settlements)")
    export.add_argument("--to")
    export.add_argument("--page-size", type=int)
    export.add_argument("--partitions", type=int, help="list N time windows concurrently")
    export.add_argument("--resume", action="store_true", help="continue an interrupted export")
    export.add_argument("--no-progress", action="store_true")
    add_unit_arguments(export)

    submit = commands.add_parser("submit", parents=[auth], help="bulk create from a file")
    submit.add_argument("what", choices=["invoices", "payments", "corrections"])
    submit.add_argument("file", type=Path, help="FILE.csv or FILE.jsonl, wire field names")
    submit.add_argument("--org", required=True, help="organization id")
    submit.add_argument("--report", type=Path, help="default: FILE.report.csv")
    submit.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    submit.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    submit.add_argument("--no-progress", action="store_true")
    submit.add_argument(
        "--fresh-keys",
        action="store_true",
        help="new idempotency keys: submit the file again as new items (by default a re-run "
        "of the same file creates nothing twice)",
    )

    demo = commands.add_parser("demo", help="submit + export against the embedded sandbox")
    demo.add_argument("--out", type=Path, default=Path("demo-out"))
    demo.add_argument("--invoices", type=int, default=None, help="invoices to seed")
    return parser


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
        },
    )


async def _run(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        from ..sandbox import FaultConfig, SandboxConfig, make_orgs, serve_forever

        faults = FaultConfig.parse(args.faults) if args.faults else None
        config = SandboxConfig(
            orgs=make_orgs(max(args.orgs, 2)),  # the second default org stays, as without --orgs
            seeded_orgs=args.orgs,
            host=args.host,
            port=args.port,
            invoices=args.invoices,
            seed=args.seed,
            faults=faults,
            rate_limit=args.rate_limit,
            **sandbox_settings(args),
        )
        await serve_forever(config)
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
                ),
            )
            resumed = f" (resumed at {summary.resumed_from:,})" if summary.resumed_from else ""
            print(f"exported {summary.count:,} {args.what} to {summary.out}{resumed}")
            return 0
        from ._submit import submit

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
        )
        print(
            f"{result.ok:,} succeeded, {result.failed:,} failed, {result.unknown:,} unknown; "
            f"report: {result.report}"
        )
        return 1 if result.failed or result.unknown else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "export":
        check_unit_arguments(parser, args)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (AmiliError, ValueError, OSError) as error:
        print(f"amili-async: error: {error}", file=sys.stderr)
        return 1
