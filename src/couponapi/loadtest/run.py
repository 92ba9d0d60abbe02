"""One `couponapi loadtest` run: check the server and the coupon, fire the crowd, then ask
the database (when it can be reached), else the server's audit of the coupon, whether every
invariant held."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from couponapi.loadtest import audit, client, ledger
from couponapi.loadtest.credentials import NO_CREDENTIALS, Credentials
from couponapi.loadtest.crowd import Plan, Tally, new_session, rush
from couponapi.loadtest.model import LoadResult
from couponapi.loadtest.targets import Target


@dataclass(frozen=True, slots=True)
class Options:
    """What `couponapi loadtest` was asked for."""

    base_url: str
    target: Target
    coupon_id: UUID
    users: int
    concurrency: int
    duration: float | None = None
    timeout: float = 10.0
    database_url: str | None = None
    per_user_limit: int = 1
    credentials: Credentials = NO_CREDENTIALS


def run_prefix(label: str = "lt") -> str:
    """A user-id prefix no earlier run used, so this run's ledger rows can be told apart."""
    return f"{label}-{secrets.token_hex(4)}-"


@asynccontextmanager
async def optional_database(url: str | None) -> AsyncIterator[asyncpg.Connection | None]:
    """A connection to `url`, or None when there is no URL or it cannot be reached."""
    connection = None
    if url:
        try:
            connection = await asyncpg.connect(url, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            connection = None
    try:
        yield connection
    finally:
        if connection is not None:
            await connection.close()


async def target_check(base_url: str, target: Target) -> None:
    """CannotRun unless the server at `base_url` is up and serves `target`."""
    async with new_session(2, 10) as session:
        if target.path not in await client.served_paths(session, base_url):
            raise client.CannotRun(f"{base_url} does not serve the {target.name!r} route")


async def loadtest(options: Options, tally: Tally | None = None) -> LoadResult:
    """Run the crowd `options` describe and judge the outcome; CannotRun when it cannot start."""
    base = options.base_url.rstrip("/")
    await target_check(base, options.target)
    async with new_session(2, 10) as session:
        before = await client.quantity_left(session, base, options.coupon_id, options.credentials)
        books = await audit.read(session, base, options.coupon_id, options.credentials)
    prefix = run_prefix()
    plan = Plan(
        base_url=base,
        target=options.target,
        coupon_id=options.coupon_id,
        users=options.users,
        concurrency=options.concurrency,
        user_prefix=prefix,
        duration=options.duration,
        timeout=options.timeout,
        credentials=options.credentials,
    )
    async with optional_database(options.database_url) as db:
        # The database's quantity is exact; None means it is not this server's database.
        db_before = await ledger.quantity_if_known(db, options.coupon_id)
        summary = await rush(plan, tally)
        check = None
        if db is not None and db_before is not None:
            check = await ledger.check(
                db,
                options.coupon_id,
                prefix,
                db_before,
                summary,
                options.per_user_limit,
                options.target.ledger,
            )
    if check is None and books is not None:  # no database of this server: its own audit
        async with new_session(2, 10) as session:
            after = await audit.read(session, base, options.coupon_id, options.credentials)
        if after is not None:
            check = audit.check(
                books, after, summary, options.per_user_limit, options.target.ledger
            )
    # What the answers alone prove, then what the database adds (both may say "oversold").
    problems = ledger.client_problems(summary, before) + (check.problems if check else [])
    return LoadResult(
        base_url=base,
        route=options.target.name,
        coupon_id=str(options.coupon_id),
        users=options.users,
        concurrency=options.concurrency,
        summary=summary,
        ledger=check,
        problems=problems,
    )
