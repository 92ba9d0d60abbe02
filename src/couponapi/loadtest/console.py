"""What a person sees in the terminal: a live progress bar with the running rate, then the
summary and race tables (rich). Nothing here counts or judges; it only shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from couponapi.loadtest.crowd import Tally
from couponapi.loadtest.model import LoadResult, Outcome, RaceRow

REFRESH_S = 0.2


class Bars:
    """Live progress bars, one per tally (claims done, or seconds for a duration run), with
    the running rate; refreshed from the tallies while the crowd runs."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8,.0f} claims/s  {task.fields[granted]:,} granted"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.tallies: list[tuple[TaskID, Tally]] = []

    def add(self, label: str, tally: Tally) -> None:
        """Show one more bar, for `tally`."""
        total = tally.duration if tally.duration is not None else tally.planned
        task = self.progress.add_task(label, total=total, rate=0.0, granted=0)
        self.tallies.append((task, tally))

    def refresh(self) -> None:
        """Redraw every bar from its tally."""
        for task, tally in self.tallies:
            by_time = tally.duration is not None
            done = min(tally.elapsed, tally.duration or 0.0) if by_time else tally.done
            granted = tally.counts[Outcome.GRANTED]
            self.progress.update(task, completed=done, rate=tally.rate(), granted=granted)

    @asynccontextmanager
    async def shown(self) -> AsyncIterator[Bars]:
        """Keep the bars on screen and fresh until the block ends."""

        async def keep_refreshing() -> None:
            while True:
                self.refresh()
                await asyncio.sleep(REFRESH_S)

        with self.progress:
            refresher = asyncio.create_task(keep_refreshing())
            try:
                yield self
            finally:
                refresher.cancel()
                self.refresh()


def summary_table(result: LoadResult) -> Table:
    """The client's counts and latencies, then the database's account."""
    s = result.summary
    table = Table(title=f"{result.route} on coupon {result.coupon_id}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for label, value in (
        ("claims sent", f"{s.requests:,}"),
        ("granted", f"{s.granted:,}"),
        ("sold out (409)", f"{s.sold_out:,}"),
        ("other refusals (4xx)", f"{s.refused:,}"),
        ("errors (5xx, connection)", f"{s.errors:,}"),
        ("timeouts", f"{s.timeouts:,}"),
        ("claims/s", f"{s.claims_per_s:,.0f}"),
        ("latency p50 / p90 / p99 / max", f"{s.p50_ms} / {s.p90_ms} / {s.p99_ms} / {s.max_ms} ms"),
    ):
        table.add_row(label, value)
    if result.ledger is not None:
        check = result.ledger
        table.add_row(
            "quantity before -> after", f"{check.quantity_before} -> {check.quantity_after}"
        )
        table.add_row("quantity consumed", f"{check.consumed:,}")
        table.add_row("ledger rows (this run)", f"{check.ledger_rows:,}")
        table.add_row("users over their limit", f"{check.users_over_limit:,}")
    return table


def print_result(console: Console, result: LoadResult) -> None:
    """The summary table, then the verdict."""
    console.print(summary_table(result))
    if result.ledger is None:
        console.print(
            "[yellow]neither the database nor the server's audit could be read: ledger not "
            "checked (--database-url, or --admin-token)[/]"
        )
    if result.problems:
        for problem in result.problems:
            console.print(f"[bold red]BROKEN[/] {problem}")
    else:
        console.print("[bold green]every invariant held[/]")


def race_table(rows: list[RaceRow]) -> Table:
    """The side-by-side race table with a verdict per strategy."""
    table = Table(title="The race: same crowd, same quantity, one coupon per strategy")
    for name, justify in (
        ("strategy", "left"), ("granted / quantity", "right"), ("oversold", "right"),
        ("ledger rows", "right"), ("ledger agrees", "center"), ("claims/s", "right"),
        ("p99 ms", "right"), ("verdict", "left"),
    ):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        style = "red" if row.oversold else ("green" if not row.broken else "yellow")
        agrees = {None: "?", True: "yes", False: "NO"}[row.ledger_agrees]
        table.add_row(
            row.strategy,
            f"{row.granted:,} / {row.quantity:,}",
            f"[{style}]{row.oversold:,}[/]",
            "?" if row.ledger_rows is None else f"{row.ledger_rows:,}",
            agrees,
            f"{row.claims_per_s:,.0f}",
            f"{row.p99_ms:,.1f}",
            f"[{style}]{row.verdict}[/]",
        )
    return table
