"""`make multihost` (benchmarks/multihost.sh makes the network, then runs this): the service
as 1, 2 and 3 separate hosts against one PostgreSQL, one crowd through all of them at once.

Each host is a `couponapi serve` (one worker) inside its own network namespace, with its own
address; PostgreSQL runs in the root namespace and listens on the bridge's address. The crowd
runs here, each connection pinned to one host in turn, so every host takes an equal share.
Every request loop is bounded in count and in time, and every address is checked to be one
of the namespaces' (the shell script made them; nothing else is ever a target).

Checked across hosts after every run, in the database: no oversell (granted = quantity taken =
ledger rows <= quantity), the per-user limit, every acknowledged claim present; one
Idempotency-Key sent to every host at once takes one unit; and in a last run one host's
processes are SIGKILLed mid-crowd and no acknowledged claim is lost.

Result: results/multihost.json, {"runs": [{"hosts", "claims_per_s", "p99_ms",
"claims_per_commit", "granted", "quantity", "invariants_held", ...}], ...}. Two shared cores
run PostgreSQL, every host and the crowd: more hosts cannot show more throughput here, so
the figures that matter are the efficiency ones (claims per commit, PostgreSQL CPU per claim).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.multihost_crowd import CrowdResult, check_books, idempotency_check, rush
from benchmarks.run import write_results
from couponapi.config import Settings
from couponapi.db.embedded import EmbeddedPostgres
from couponapi.db.migrate import ensure_database, migrate_url
from couponapi.db.pool import connect
from couponapi.db.session_defaults import apply_timeouts

PORT = 1323
TOKEN = "multihost-admin-token"  # noqa: S105 (a throwaway run, never exposed)
DATABASE = "couponapi_multihost"
READY_SECONDS = 60


class Host:
    """One `couponapi serve` in its network namespace."""

    def __init__(self, namespace: str, address: str, database_url: str, log: Path) -> None:
        self.namespace, self.address = namespace, address
        self.base_url = f"http://{address}:{PORT}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "COUPONAPI_ADMIN_TOKEN": TOKEN,
            "COUPONAPI_DATA_DIR": str(log.parent),
            "COUPONAPI_ENABLE_RACE": "false",
        }
        command = [sys.executable, "-m", "couponapi", "serve", "--host", address]
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", namespace, *command, "--port", str(PORT)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL every process of this host at once (serve and its worker)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


async def wait_ready(hosts: list[Host]) -> None:
    import aiohttp

    deadline = time.monotonic() + READY_SECONDS
    async with aiohttp.ClientSession() as session:
        for host in hosts:
            while True:
                assert host.process.poll() is None, f"{host.namespace}: serve exited"
                assert time.monotonic() < deadline, f"{host.namespace}: not ready in time"
                try:
                    async with session.get(
                        f"{host.base_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as answer:
                        if answer.status == 200:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)


def postgres_cpu_seconds(server: EmbeddedPostgres) -> float:
    """CPU seconds PostgreSQL has spent: the postmaster, its live children, and the children
    it has reaped (their time is added to its cutime/cstime)."""
    postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15]) / tick
        elif parent == postmaster:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def commits(db: asyncpg.Connection) -> int:
    value: int = await db.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return value


async def one_run(
    count: int, hosts: list[Host], db: asyncpg.Connection, server: EmbeddedPostgres, kill: bool
) -> dict[str, Any]:
    """One crowd through `hosts`; the database checked afterwards."""
    quantity, users, limit = 4_500, 6_000, 1  # two claims each: 12,000 requests
    coupon = await db.fetchval(
        """INSERT INTO coupon (id, name, type, quantity, total_quantity, per_user_limit)
           VALUES (gen_random_uuid(), 'multihost', 'percent', $1, $1, $2) RETURNING id""",
        quantity,
        limit,
    )
    await asyncio.sleep(1.1)  # pg_stat_database is flushed at most once a second
    cpu0, commits0 = postgres_cpu_seconds(server), await commits(db)
    victim = hosts[-1] if kill else None
    result: CrowdResult = await rush([h.base_url for h in hosts], coupon, users, victim)
    await asyncio.sleep(1.1)
    cpu, commit_count = postgres_cpu_seconds(server) - cpu0, await commits(db) - commits0
    books = await check_books(db, coupon, result, limit, kill)
    idempotent = None if kill else await idempotency_check(db, [h.base_url for h in hosts])
    held = books["held"] and (idempotent is None or idempotent["held"])
    answered = result.answered
    return {
        "hosts": count,
        "host_killed_mid_run": kill,
        "claims_per_s": round(answered / result.seconds, 1),
        "p99_ms": result.p99_ms,
        "p50_ms": result.p50_ms,
        "claims_per_commit": round(answered / max(commit_count, 1), 2),
        "granted": books["granted"],
        "quantity": quantity,
        "requests": result.sent,
        "answered": answered,
        "statuses": result.statuses,
        "answered_per_host": result.per_host,
        "postgres_cpu_ms_per_claim": round(cpu / max(answered, 1) * 1000, 3),
        "postgres_cpu_s": round(cpu, 2),
        "seconds": round(result.seconds, 2),
        "checks": {**books, "idempotency": idempotent},
        "invariants_held": held,
    }


async def main(bridge: str, addresses: list[str], namespaces: list[str]) -> bool:
    network = ipaddress.ip_network(f"{bridge}/24", strict=False)
    # The only targets: the namespaces' addresses, which the shell script made in this range.
    assert all(ipaddress.ip_address(a) in network for a in [bridge, *addresses])
    work = Path(tempfile.mkdtemp(prefix="couponapi-multihost-"))
    os.chmod(work, 0o755)  # noqa: S103 (PostgreSQL may run as another user: we are root)
    server = EmbeddedPostgres(work / "pg", listen_addresses=f"127.0.0.1,{bridge}")
    server.start()
    server.stop()
    server.allow_network(str(network))
    server.start()
    runs: list[dict[str, Any]] = []
    try:
        local = server.info().url(DATABASE)
        await ensure_database(local)
        await migrate_url(local)
        shared = local.replace("@127.0.0.1:", f"@{bridge}:")
        setup = await connect(local, Settings())
        await apply_timeouts(setup, Settings(), service_url=shared)
        await setup.close()
        db = await asyncpg.connect(local)
        plan = [(1, False), (2, False), (3, False), (3, True)]
        for count, kill in plan:
            hosts = [
                Host(ns, addr, shared, work / f"{ns}-{count}{'-kill' if kill else ''}" / "log")
                for ns, addr in zip(namespaces[:count], addresses[:count], strict=True)
            ]
            try:
                await wait_ready(hosts)
                run = await one_run(count, hosts, db, server, kill)
            finally:
                for host in hosts:
                    host.stop()
            runs.append(run)
            print(f"{count} host(s){' (one killed)' if kill else ''}: {summary(run)}")
        await db.close()
    finally:
        server.stop()
    write_results("multihost", {"runs": runs, "machine": machine_note()})
    return all(run["invariants_held"] for run in runs)


def summary(run: dict[str, Any]) -> str:
    keys = ("claims_per_s", "p99_ms", "claims_per_commit", "granted", "postgres_cpu_ms_per_claim")
    return ", ".join(f"{k}={run[k]}" for k in keys) + f", invariants_held={run['invariants_held']}"


def machine_note() -> str:
    return (
        f"{os.cpu_count()} shared cores run PostgreSQL, every host (one worker each) and the "
        "crowd: more hosts add processes, not cores, so claims_per_s cannot grow here; "
        "claims_per_commit and postgres_cpu_ms_per_claim show what each host costs the database"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--hosts", required=True, help="comma-separated host addresses")
    parser.add_argument("--namespaces", required=True, help="comma-separated, same order")
    args = parser.parse_args()
    ok = asyncio.run(main(args.bridge, args.hosts.split(","), args.namespaces.split(",")))
    sys.exit(0 if ok else 1)
