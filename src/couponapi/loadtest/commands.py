"""`couponapi loadtest` and `couponapi race`: their arguments and what each command does.

Exit status: 0 every invariant held; 1 an invariant broke (for `race`: a strategy meant to be
safe broke one; the naive strategy overselling is the demonstration); 2 bad arguments;
3 the run could not start (server unreachable, unknown coupon, route not served).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import uvloop
from rich.console import Console

from couponapi.config import Settings
from couponapi.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from couponapi.loadtest import chart, console, race, run
from couponapi.loadtest.client import CannotRun
from couponapi.loadtest.credentials import Credentials
from couponapi.loadtest.crowd import Tally
from couponapi.loadtest.model import LoadResult, RaceRow
from couponapi.loadtest.targets import BY_NAME, TARGETS, Target

OK, BROKEN, USAGE, CANNOT_RUN = 0, 1, 2, 3
COMMANDS = ("loadtest", "race")
DEFAULT_URL = "http://127.0.0.1:1323"
MAX_DURATION_USERS = 10_000_000  # a duration run still stops after this many claims


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_parsers(commands: Any) -> None:
    """Add the `loadtest` and `race` subcommands to the CLI's subparsers."""
    names = [t.name for t in TARGETS]
    load = commands.add_parser("loadtest", help="rush a coupon with a crowd, then check the ledger")
    load.add_argument("coupon", type=UUID, help="id of the coupon to claim")
    load.add_argument(
        "--route", choices=names, default="function", help="way to claim (default function)"
    )
    load.add_argument(
        "--users", type=_positive(int), help="distinct users, one claim each (default 1000)"
    )
    load.add_argument(
        "--concurrency", type=_positive(int), default=100, help="connections (default 100)"
    )
    load.add_argument("--duration", type=_positive(float), help="stop after this many seconds")
    load.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="write the result (stdout: no PATH)"
    )
    load.add_argument("--per-user-limit", type=_positive(int), default=1, help="(default 1)")
    rush = commands.add_parser("race", help="race the strategies with the same crowd, side by side")
    rush.add_argument("--quantity", type=_positive(int), default=100, help="(default 100)")
    rush.add_argument("--users", type=_positive(int), default=2_000, help="(default 2000)")
    rush.add_argument(
        "--concurrency", type=_positive(int), default=200, help="at once (default 200)"
    )
    rush.add_argument(
        "--strategies", help=f"comma-separated (default: all served) of: {', '.join(names)}"
    )
    rush.add_argument("--chart", type=Path, metavar="PNG", help="draw the table as a picture")
    rush.add_argument("--json", action="store_true", help="print the rows as JSON")
    for parser in (load, rush):
        parser.add_argument("--url", default=DEFAULT_URL, help=f"server (default {DEFAULT_URL})")
        parser.add_argument(
            "--timeout", type=_positive(float), default=10.0, help="per claim, s (default 10)"
        )
        parser.add_argument("--database-url", help="check here (default: the private one)")
        parser.add_argument(
            "--admin-token", help="admin credential (default: COUPONAPI_ADMIN_TOKEN, or serve's)"
        )
        parser.add_argument(
            "--jwt-secret",
            help="HS256 secret to mint a user token per claim (default: COUPONAPI_JWT_SECRET, "
            "or serve's)",
        )


def default_database_url() -> str | None:
    """DATABASE_URL, else the private server's URL when its data directory has one."""
    settings = Settings()
    if settings.database_url:
        return settings.database_url
    try:
        return EmbeddedPostgres(settings.data_dir).info().url()
    except (EmbeddedPostgresError, OSError, ValueError):
        return None


async def _loadtest(args: argparse.Namespace, screen: Console) -> LoadResult:
    options = run.Options(
        base_url=args.url,
        target=BY_NAME[args.route],
        coupon_id=args.coupon,
        users=args.users or (MAX_DURATION_USERS if args.duration else 1_000),
        concurrency=args.concurrency,
        duration=args.duration,
        timeout=args.timeout,
        database_url=args.database_url or default_database_url(),
        per_user_limit=args.per_user_limit,
        credentials=Credentials.found(args.admin_token, args.jwt_secret),
    )
    tally = Tally(planned=options.users, duration=options.duration)
    async with console.Bars(screen).shown() as bars:
        bars.add(args.route, tally)
        return await run.loadtest(options, tally)


async def _race(args: argparse.Namespace, screen: Console) -> tuple[list[RaceRow], bool]:
    wanted = tuple(s.strip() for s in args.strategies.split(",")) if args.strategies else None
    options = race.RaceOptions(
        base_url=args.url,
        quantity=args.quantity,
        users=args.users,
        concurrency=args.concurrency,
        strategies=wanted,
        timeout=args.timeout,
        credentials=Credentials.found(args.admin_token, args.jwt_secret),
    )
    async with (
        run.optional_database(args.database_url or default_database_url()) as db,
        console.Bars(screen).shown() as bars,
    ):

        def start(target: Target, tally: Tally) -> None:
            bars.add(f"{target.name:>12}", tally)

        rows = await race.race(options, db, on_start=start)
        return rows, all(row.ledger_rows is not None for row in rows)


def _write_json(data: bytes, where: str) -> None:
    if where == "-":
        sys.stdout.buffer.write(data + b"\n")
    else:
        Path(where).write_bytes(data + b"\n")


def _loadtest_command(args: argparse.Namespace, screen: Console) -> int:
    result = asyncio.run(_loadtest(args, screen), loop_factory=uvloop.new_event_loop)
    console.print_result(screen, result)
    if args.json is not None:
        _write_json(msgspec.json.format(msgspec.json.encode(result), indent=2), args.json)
    return BROKEN if result.problems else OK


def _race_command(args: argparse.Namespace, screen: Console) -> int:
    rows, checked = asyncio.run(_race(args, screen), loop_factory=uvloop.new_event_loop)
    screen.print(console.race_table(rows))
    if not checked:
        screen.print(
            "[yellow]neither the database nor the server's audit could be read: ledger columns "
            "unknown (--database-url, or --admin-token)[/]"
        )
    if args.chart is not None:
        chart.draw(rows, args.chart)
        screen.print(f"chart written to {args.chart}")
    if args.json:
        _write_json(msgspec.json.encode(rows), "-")
    return BROKEN if any(row.broken and row.safe for row in rows) else OK


def run_command(args: argparse.Namespace) -> int:
    """Run `loadtest` or `race`; the exit status (see the module docstring)."""
    to_stdout = args.json == "-" or args.json is True
    stream = sys.stderr if to_stdout else sys.stdout
    # Piped output keeps the tables readable instead of rich's 80 columns.
    screen = Console(stderr=to_stdout, width=None if stream.isatty() else 170)
    try:
        if args.command == "loadtest":
            return _loadtest_command(args, screen)
        return _race_command(args, screen)
    except CannotRun as error:
        screen.print(f"[bold red]couponapi {args.command}:[/] {error}")
        return CANNOT_RUN
    except OSError as error:
        screen.print(f"[bold red]couponapi {args.command}:[/] {error}")
        return CANNOT_RUN
    except KeyboardInterrupt:
        screen.print(f"couponapi {args.command}: interrupted")
        return CANNOT_RUN
