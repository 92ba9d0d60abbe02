"""RESULTS.md and claims.png from one run's record (results/latest.json)."""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.scenarios import CLAIM_SCENARIOS, GO_ORIGINAL_CLAIMS_PER_S

Record = dict[str, Any]


def postgres_version(url: str) -> str:
    async def ask() -> str:
        connection = await asyncpg.connect(url)
        try:
            version: str = await connection.fetchval("SHOW server_version")
            durable = await connection.fetchval(
                "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings"
                " WHERE name IN ('fsync', 'synchronous_commit')"
            )
            return f"PostgreSQL {version} ({durable})"
        finally:
            await connection.close()

    return asyncio.run(ask())


def _claims_cell(r: Record) -> str:
    if not r["ok"] and r.get("ledger"):
        return "**FAIL: " + "; ".join(r["problems"]) + "**"
    return f"{r['ok_per_s']:,.0f}"


def claims_per_commit(r: Record) -> str:
    """Mean grants per granting transaction (the group-commit batch), from the ledger."""
    ledger = r.get("ledger") or {}
    if not ledger.get("commits"):
        return "-"
    return f"{ledger['ledger_rows'] / ledger['commits']:.1f}"


def _row(r: Record) -> str:
    check = "ok" if r["ok"] else "**broken**"
    return (
        f"| {r['target']} | {'yes' if r['safe'] else '**no**'} | {_claims_cell(r)} "
        f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['p999_ms']:.1f} "
        f"| {r['errors_5xx']} | {r['timeouts']} | {r['socket_errors']} "
        f"| {claims_per_commit(r)} | {check} |"
    )


HEADER = (
    "| target | safe | claims/s | p50 ms | p99 ms | p99.9 ms | 5xx | timeouts | socket errors "
    "| claims/commit | DB check |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
)


def find(records: list[Record], strategy: str, api: str, scenario: str) -> Record | None:
    return next(
        (r for r in records
         if r["strategy"] == strategy and r["api"] == api and r["scenario"] == scenario),
        None,
    )  # fmt: skip


@dataclass(frozen=True)
class Standing:
    """Where the goals stand in one run: each pair of the target pass (give-transaction
    then the default v2 strategy, seconds apart), and the 1,000-connection crowds. A run without
    a target pass (older files, `--skip targets`) gives its claims pass as one round."""

    pairs: list[tuple[Record, Record]]  # (give-transaction, default v2), hot-100, per round
    crowds: list[Record]  # default v2, hot-1000, per round

    @property
    def ratios(self) -> list[float]:
        return [best["ok_per_s"] / locking["ok_per_s"] for locking, best in self.pairs]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def rate(self) -> float:
        return float(statistics.median(best["ok_per_s"] for _, best in self.pairs))

    @property
    def crowd_rate(self) -> float:
        return float(statistics.median(r["ok_per_s"] for r in self.crowds))

    def crowd_total(self, field: str) -> int:
        return sum(r[field] for r in self.crowds)


def standing(run: Record, default: str) -> Standing:
    """The target pass's figures (see Standing), or the claims pass's when there is none."""
    passes = run.get("targets") or [{**r, "round": 1} for r in run["claims"]]
    rounds = sorted({r["round"] for r in passes})

    def of(strategy: str, api: str, scenario: str, round_: int) -> Record | None:
        return find([r for r in passes if r["round"] == round_], strategy, api, scenario)

    pairs = []
    crowds = []
    for round_ in rounds:
        locking = of("locking", "v1", "hot-100", round_)
        best = of(default, "v2", "hot-100", round_)
        if locking and best and locking["ok_per_s"]:
            pairs.append((locking, best))
        crowd = of(default, "v2", "hot-1000", round_)
        if crowd:
            crowds.append(crowd)
    return Standing(pairs, crowds)


def _each(values: list[float], unit: str = "", digits: int = 0) -> str:
    return ", ".join(f"{v:,.{digits}f}{unit}" for v in values)


def ratios(run: Record, default: str) -> list[str]:
    """The goals, measured side by side in this run."""
    found = standing(run, default)
    lines = []
    if found.pairs:
        rates = [best["ok_per_s"] for _, best in found.pairs]
        lockings = [locking["ok_per_s"] for locking, _ in found.pairs]
        lines.append(
            f"- hot coupon, 100 connections, {len(found.pairs)} pair(s) run in turn: v2 "
            f"`{default}` {_each(rates)} claims/s against our give-transaction "
            f"{_each(lockings)}/s: **{found.ratio:.1f}x** (median of {_each(found.ratios, 'x', 1)})"
            f"; median {found.rate:,.0f}/s = **{found.rate / GO_ORIGINAL_CLAIMS_PER_S:.1f}x** "
            f"the original Go service (~{GO_ORIGINAL_CLAIMS_PER_S}/s, measured on this machine "
            "when the goals were set)."
        )
    if found.crowds:
        lines.append(
            f"- hot coupon, 1,000 connections: v2 `{default}` "
            f"{_each([r['ok_per_s'] for r in found.crowds])} claims/s, p99 "
            f"{_each([r['p99_ms'] for r in found.crowds], ' ms', 1)}; "
            f"{found.crowd_total('timeouts')} timeouts, {found.crowd_total('errors_5xx')} 5xx, "
            f"{found.crowd_total('socket_errors')} socket errors in all."
        )
    return lines


def write(run: Record, folder: Path) -> None:
    """Write RESULTS.md (and claims.png when matplotlib is installed)."""
    from couponapi.config import Settings

    default = Settings().claim_strategy
    out = [
        "# Benchmark results",
        "",
        f"Run {run['started']}{' (--quick)' if run['quick'] else ''}, {run['minutes']} min; "
        f"{run['machine']['cores']} cores ({run['machine']['cpu']}), {run['postgres']}, "
        f"Python {run['machine']['python']}, {run['machine']['wrk']}. "
        f"Server: {run['server']} with {run['workers']} workers; wrk with 2 threads, "
        "every request a new user; the database checked after every run.",
        "",
        "## Goals",
        "",
        *ratios(run, default),
        "",
    ]
    for scenario in CLAIM_SCENARIOS:
        rows = [r for r in run["claims"] if r["scenario"] == scenario.name]
        if rows:
            out += [f"## {scenario.what}", "", HEADER, *map(_row, rows), ""]
    if run.get("targets"):
        out += ["## The goals, run in turn (round: give-transaction, v2 hot-100, "
                "v2 hot-1000)", "", HEADER.replace("| target |", "| round | target | scenario |")
                .replace("| --- | --- |", "| ---: | --- | --- | --- |", 1)]  # fmt: skip
        for r in run["targets"]:
            cells = _row(r).split(" | ")
            cells[0] = f"| {r['round']} | {r['target']} | {r['scenario']}"
            out.append(" | ".join(cells))
        out.append("")
    for name in ("original", "sold-out-100", "get-100"):
        rows = [r for r in run["claims"] if r["scenario"] == name]
        if rows:
            what = rows[0]["what"]
            extra = " (claims/s = 2xx/s; refusals/s is the request rate)" if "sold" in name else ""
            out += [f"## {what}{extra}", "", HEADER.replace("claims/s", "2xx/s | requests/s", 1)
                    .replace("| ---: |", "| ---: | ---: |", 1)]  # fmt: skip
            for r in rows:
                line = _row(r).split(" | ")
                line.insert(3, f"{r['requests_per_s']:,.0f}")
                out.append(" | ".join(line))
            out.append("")
    if run["servers"]:
        out += ["## Server comparison (same endpoints, one worker per core)", "",
                "| server | target | scenario | requests/s | 2xx/s | p50 ms | p99 ms | 5xx "
                "| timeouts | DB check |",
                "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
        for r in run["servers"]:
            out.append(
                f"| {r['server']} | {r['target']} | {r['scenario']} | {r['requests_per_s']:,.0f} "
                f"| {r['ok_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                f"| {r['errors_5xx']} | {r['timeouts']} | {'ok' if r['ok'] else 'broken'} |"
            )
        out.append("")
    if run["pgbench"]:
        out += ["## PostgreSQL alone (pgbench, same server, one hot coupon)", "",
                "| SQL | clients | claims/transaction | transactions/s | claims/s | latency ms "
                "| DB check |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
        for r in run["pgbench"]:
            out.append(
                f"| {r['name']} | {r['clients']} | {r['claims_per_transaction']} "
                f"| {r['transactions_per_s']:,.0f} | {r['claims_per_s']:,.0f} "
                f"| {r['latency_ms']} | {'ok' if r['ok'] else 'broken'} |"
            )
        out.append("")
    if chart(run, folder / "claims.png"):
        out += ["![claims per second](claims.png)", ""]
    (folder / "RESULTS.md").write_text("\n".join(out))


def chart(run: Record, path: Path) -> bool:
    """Grouped bars of claims/s per target and scenario (log scale); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    scenarios = [s.name for s in CLAIM_SCENARIOS]
    targets = list(dict.fromkeys(r["target"] for r in run["claims"] if r["scenario"] in scenarios))
    if not targets:
        return False
    figure, axes = plt.subplots(figsize=(10, 0.55 * len(targets) + 1.8))
    height = 0.8 / len(scenarios)
    for n, scenario in enumerate(scenarios):
        values, labels = [], []
        for target in targets:
            r = next((x for x in run["claims"]
                      if x["target"] == target and x["scenario"] == scenario), None)  # fmt: skip
            values.append(r["ok_per_s"] if r and r["ok"] else 0)
            labels.append("" if r is None else ("oversold" if not r["ok"] else ""))
        positions = [i + n * height for i in range(len(targets))]
        bars = axes.barh(positions, values, height=height, label=scenario)
        for bar, label in zip(bars, labels, strict=True):
            if label:
                where = axes.get_yaxis_transform()
                axes.text(0.01, bar.get_y() + height / 2, f"{scenario}: {label}",
                          va="center", color="red", fontsize=7, transform=where)  # fmt: skip
    axes.axvline(GO_ORIGINAL_CLAIMS_PER_S, color="grey", linestyle="--",
                 label=f"original Go (~{GO_ORIGINAL_CLAIMS_PER_S}/s)")  # fmt: skip
    axes.axvline(20 * GO_ORIGINAL_CLAIMS_PER_S, color="green", linestyle=":",
                 label="target: 20x the original")  # fmt: skip
    names = [t.split(" (")[0] for t in targets]  # "v1 locking (give-transaction)" -> "v1 locking"
    axes.set_yticks([i + height for i in range(len(targets))], names)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("granted claims per second (log scale; a broken invariant scores 0)")
    axes.set_title(f"couponapi claims/s, {run['machine']['cores']} cores, durable PostgreSQL")
    axes.legend(loc="lower right", fontsize=8)
    figure.subplots_adjust(left=0.2, right=0.97, top=0.92, bottom=0.12)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
