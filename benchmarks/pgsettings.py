"""`python -m benchmarks.pgsettings`: durable PostgreSQL settings for group commit, alternated.

Each variant is a set of settings that keep every acknowledged claim on disk (`fsync` and
`synchronous_commit` stay on, and are checked in every run): `commit_delay` /
`commit_siblings` (a committing backend waits a little for others to share its WAL flush),
`wal_buffers`, `wal_writer_delay`. The runs use a PostgreSQL cluster of their own, made for
this benchmark in `<data_dir>/bench-pgsettings` (on the same disk as the service's own, so
fsync costs what it costs there) and removed afterwards: each variant is applied with
`ALTER SYSTEM` and a restart (wal_buffers needs one), so nothing of `db/embedded.py` or the
service's own server changes. Every round runs each variant once, the order rotated by one
each round; a variant's run is the v2 default and v1 group commit on hot-100 and spread-100
under wrk, with claims/s, claims per commit and the CPU per claim of the server and
PostgreSQL (benchmarks.cpu). The database is checked after every run.
Result: results/<name>.json, with the medians per variant and run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from benchmarks.cpu import measure_with_cpu
from benchmarks.report import claims_per_commit
from benchmarks.run import WORKERS, write_results
from benchmarks.scenarios import HOT_100, SPREAD_100, V1_GROUP_COMMIT, V2_GROUP_COMMIT
from benchmarks.service import running_service
from couponapi.config import Settings
from couponapi.db.embedded import SERVER_SETTINGS, EmbeddedPostgres
from couponapi.db.migrate import ensure_database, migrate_url

# Durable variants only. PostgreSQL's defaults: commit_delay 0 (commit_siblings 5),
# wal_buffers -1 (1/32 of shared_buffers: 4MB at 128MB), wal_writer_delay 200ms.
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    # At most a couple of batches commit at once (one per worker process), so the default
    # commit_siblings of 5 would never let a delay start: 1 sibling is enough here.
    "commit_delay=100us": {"commit_delay": "100", "commit_siblings": "1"},
    "commit_delay=500us": {"commit_delay": "500", "commit_siblings": "1"},
    "wal_buffers=16MB": {"wal_buffers": "16MB"},
    "wal_writer_delay=10ms": {"wal_writer_delay": "10ms"},
}
RUNS = [
    (V2_GROUP_COMMIT, HOT_100), (V2_GROUP_COMMIT, SPREAD_100),
    (V1_GROUP_COMMIT, HOT_100), (V1_GROUP_COMMIT, SPREAD_100),
]  # fmt: skip
DATABASE = "bench"
CHECKED = ["fsync", "synchronous_commit", "commit_delay", "commit_siblings", "wal_buffers",
           "wal_writer_delay"]  # fmt: skip


async def _apply(url: str, settings: dict[str, str]) -> None:
    """Replace what ALTER SYSTEM set before with `settings` (applied at the next start)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("ALTER SYSTEM RESET ALL")
        for name, value in settings.items():
            await connection.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    finally:
        await connection.close()


async def _shown(url: str) -> dict[str, str]:
    connection = await asyncpg.connect(url)
    try:
        return {name: await connection.fetchval(f"SHOW {name}") for name in CHECKED}
    finally:
        await connection.close()


def restart(server: EmbeddedPostgres, settings: dict[str, str]) -> str:
    """Restart `server` with `settings` (over PostgreSQL's defaults); its database's URL
    (the port may change on a restart)."""
    asyncio.run(_apply(server.info().url(DATABASE), settings))
    server.stop()
    server.start()
    return server.info().url(DATABASE)


@contextmanager
def own_server(keep: bool) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL cluster of this benchmark's own, started, with a migrated database."""
    data_dir = Settings().data_dir.resolve() / "bench-pgsettings"
    # The service's settings but those the variants set (given on the command line, a
    # setting would win over ALTER SYSTEM): "defaults" is PostgreSQL's own for those.
    varied = {name for variant in VARIANTS.values() for name in variant}
    server = EmbeddedPostgres(
        data_dir, settings={k: v for k, v in SERVER_SETTINGS.items() if k not in varied}
    )
    server.start()
    url = server.info().url(DATABASE)

    async def create() -> None:
        await ensure_database(url)
        await migrate_url(url)

    try:
        asyncio.run(create())
        yield server
    finally:
        asyncio.run(_apply(server.info().url(DATABASE), {}))
        server.stop()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """variant -> "target, scenario" -> medians of claims/s and CPU µs per claim."""
    found: dict[str, dict[str, Any]] = {}
    for variant in dict.fromkeys(r["variant"] for r in runs):
        found[variant] = {}
        for target, scenario in RUNS:
            of = [r for r in runs if r["variant"] == variant and r["target"] == target.name
                  and r["scenario"] == scenario.name]  # fmt: skip
            if of:
                found[variant][f"{target.name}, {scenario.name}"] = {
                    "claims_per_s": statistics.median(r["ok_per_s"] for r in of),
                    "server_cpu_us": statistics.median(
                        r["cpu_us_per_request"]["server"] for r in of
                    ),
                    "postgres_cpu_us": statistics.median(
                        r["cpu_us_per_request"]["postgres"] for r in of
                    ),
                    "claims_per_commit": [claims_per_commit(r) for r in of],
                }
    return found


def main() -> None:
    """Alternate the variants `--rounds` times; write results/<name>.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pgsettings", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run")
    parser.add_argument(
        "--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS),
        help="which variants to alternate (default: all)",
    )  # fmt: skip
    parser.add_argument("--name", default="pgsettings", help="results/<name>.json")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's cluster")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with own_server(args.keep) as server:
        for round_number in range(1, args.rounds + 1):
            shift = (round_number - 1) % len(args.variants)
            for variant in [*args.variants[shift:], *args.variants[:shift]]:
                url = restart(server, VARIANTS[variant])
                shown = asyncio.run(_shown(url))
                if shown["fsync"] != "on" or shown["synchronous_commit"] != "on":
                    raise SystemExit(f"not durable: {shown}")
                print(f"round {round_number}: {variant} {shown}", flush=True)
                with running_service(url, "granian", WORKERS) as base:
                    for target, scenario in RUNS:
                        record = measure_with_cpu(url, base, target, scenario, args.seconds)
                        if not record["ok"]:
                            raise SystemExit(f"the database check failed: {record['problems']}")
                        runs.append(
                            {"variant": variant, "settings": shown, "round": round_number,
                             **record}
                        )  # fmt: skip
    found = medians(runs)
    for variant, figures in found.items():
        print(variant)
        for run, of in figures.items():
            print(f"  {run:40} {of}")
    write_results(
        args.name,
        {"workers": WORKERS, "seconds": args.seconds, "rounds": args.rounds,
         "variants": {v: VARIANTS[v] for v in args.variants}, "medians": found, "runs": runs},
    )  # fmt: skip


if __name__ == "__main__":
    main()
