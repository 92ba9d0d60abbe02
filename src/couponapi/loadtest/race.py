"""The race demo: the same crowd rushes one fresh coupon per strategy, side by side.

Each strategy gets its own coupon of the same quantity and the same number of distinct
users at the same concurrency, one strategy after the other so they do not slow each
other down. A row counts what the users were told (granted), what the ledger holds, and
says in plain words whether the strategy gave away coupons that did not exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from couponapi.loadtest import audit, client, ledger
from couponapi.loadtest.credentials import NO_CREDENTIALS, Credentials
from couponapi.loadtest.crowd import Plan, Tally, new_session, rush
from couponapi.loadtest.model import LedgerCheck, RaceRow, Summary
from couponapi.loadtest.run import run_prefix
from couponapi.loadtest.targets import BY_NAME, Target, available


@dataclass(frozen=True, slots=True)
class RaceOptions:
    """What `couponapi race` was asked for; `strategies` None means every served one."""

    base_url: str = "http://127.0.0.1:1323"
    quantity: int = 100
    users: int = 2_000
    concurrency: int = 200
    strategies: tuple[str, ...] | None = None
    timeout: float = 10.0
    credentials: Credentials = NO_CREDENTIALS


OnStart = Callable[[Target, Tally], None]
OnRow = Callable[[RaceRow], None]


def pick(paths: set[str], wanted: tuple[str, ...] | None) -> list[Target]:
    """The targets to race: the wanted ones (each must be served), else every served one."""
    served = available(paths)
    if wanted is None:
        return served
    missing = [name for name in wanted if BY_NAME.get(name) not in served]
    if missing:
        names = ", ".join(t.name for t in served)
        raise client.CannotRun(f"not served here: {', '.join(missing)} (served: {names})")
    return [BY_NAME[name] for name in wanted]


def verdict(target: Target, row: RaceRow, summary: Summary) -> str:
    """One sentence a newcomer understands."""
    q = row.quantity
    if row.oversold:
        blame = "no lock: claims overwrite each other" if not target.safe else "a BUG!"
        return f"OVERSOLD: gave {row.oversold} coupons that never existed ({blame})"
    if row.ledger_agrees is False:
        return "UNSAFE: the ledger does not match what users were told"
    failed = summary.errors + summary.timeouts
    if row.granted < q and failed:
        return f"gave only {row.granted} of {q}: {failed} claims failed or timed out"
    if row.granted == 0 and summary.refused:
        return f"refused all {summary.refused:,} claims (switched off on this server?)"
    if not target.safe:
        return "no oversell this time (lucky timing): raise --concurrency"
    if row.granted == q:
        return f"safe: exactly {q} given, {summary.sold_out:,} told 'sold out'"
    return f"gave {row.granted} of {q}"


def make_row(
    target: Target, quantity: int, summary: Summary, check: LedgerCheck | None, coupon_id: str
) -> RaceRow:
    """The table row for one strategy's run."""
    ledger_rows = check.ledger_rows if check is not None else None
    granted_most = max(summary.granted, ledger_rows or 0)
    row = RaceRow(
        strategy=target.name,
        quantity=quantity,
        granted=summary.granted,
        oversold=max(0, granted_most - quantity),
        ledger_rows=ledger_rows,
        claims_per_s=summary.claims_per_s,
        p99_ms=summary.p99_ms,
        safe=target.safe,
        ledger_agrees=None if check is None else check.ok,
        coupon_id=coupon_id,
    )
    row.broken = bool(row.oversold) or row.ledger_agrees is False
    row.verdict = verdict(target, row, summary)
    return row


async def race(
    options: RaceOptions,
    db: ledger.Executor | None = None,
    on_start: OnStart | None = None,
    on_row: OnRow | None = None,
) -> list[RaceRow]:
    """Race every chosen strategy. The ledger columns come from `db` (the server's database)
    when it is that, else from the server's audit of each coupon (an admin credential or a
    server key); without either they stay unknown (None)."""
    base = options.base_url.rstrip("/")
    rows: list[RaceRow] = []
    async with new_session(4, options.timeout) as session:
        targets = pick(await client.served_paths(session, base), options.strategies)
        stamp = time.strftime("%H:%M:%S")
        for target in targets:
            name = f"race {stamp} {target.name}"
            coupon_id = await client.create_coupon(
                session, base, options.quantity, name, options.credentials
            )
            prefix = run_prefix(f"race-{target.name}")
            plan = Plan(
                base_url=base,
                target=target,
                coupon_id=coupon_id,
                users=options.users,
                concurrency=options.concurrency,
                user_prefix=prefix,
                timeout=options.timeout,
                credentials=options.credentials,
            )
            tally = Tally(planned=options.users)
            if on_start is not None:
                on_start(target, tally)
            own_db = await ledger.quantity_if_known(db, coupon_id) is not None
            before = None
            if not own_db:
                before = await audit.read(session, base, coupon_id, options.credentials)
            summary = await rush(plan, tally)
            check = None
            if own_db and db is not None:
                check = await ledger.check(
                    db, coupon_id, prefix, options.quantity, summary, 1, target.ledger
                )
            elif before is not None:
                after = await audit.read(session, base, coupon_id, options.credentials)
                if after is not None:
                    check = audit.check(before, after, summary, 1, target.ledger)
            row = make_row(target, options.quantity, summary, check, str(coupon_id))
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows
