"""`python -m benchmarks.run [--quick] [--only TEXT] [--server S]`: the whole benchmark suite.

Order: pgbench (PostgreSQL alone), every claim strategy under every scenario on the default
server, the runs the goals compare (give-transaction and the default v2 strategy,
in turn, five times), identity, holds and webhooks on the hot claim (benchmarks.identity,
benchmarks.holds, benchmarks.webhooks), then the server comparison (each server in turn on
the same endpoints).
After every wrk run the database is checked (benchmarks.ledger); a broken invariant
is a failure, not a figure. Results: results/run-<time>.json, results/latest.json,
results/RESULTS.md and results/claims.png; a partial run (--quick, --only, --scenario, --skip)
writes them to results/partial/ instead (not kept in git), so it never replaces the published
figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from benchmarks import holds, identity, pgbench, report, webhooks
from benchmarks.ledger import make_coupons, read_ledger
from benchmarks.scenarios import (
    HOT_QUANTITY,
    TARGET_ROUNDS,
    Scenario,
    Target,
    claim_matrix,
    server_matrix,
    target_matrix,
)
from benchmarks.service import fresh_database, running_service
from benchmarks.wrk import Load, run_wrk
from couponapi.servers import SERVERS

RESULTS = Path(__file__).with_name("results")
QUICK_SECONDS = 3.0
WORKERS = os.cpu_count() or 2  # one server process per core


def measure(
    url: str,
    base: str,
    target: Target,
    scenario: Scenario,
    seconds: float,
    credentials: Path | None = None,
    hold_seconds: int | None = None,
    coupons: list[UUID] | None = None,
) -> dict[str, Any]:
    """One wrk run of `target` under `scenario`, with the database checked afterwards;
    `credentials` is claim.lua's file of tokens or the key (benchmarks.identity), and
    `hold_seconds` the hold of the run's coupons (benchmarks.holds). `coupons`, made by the
    caller (each with `scenario.quantity`), are the ids wrk sends round-robin, a coupon listed
    twice getting twice the requests; by default `scenario.coupons` new ones."""
    if coupons is None:
        coupons = asyncio.run(make_coupons(url, scenario.coupons, scenario.quantity, hold_seconds))
    tag = f"{target.strategy}-{scenario.name}-{time.monotonic_ns()}"
    if target.kind == "v2token" and credentials is None:  # one fresh user token per request
        credentials = identity.hs256_tokens(identity.credentials_folder() / f"{tag}.txt", seconds)
    load = Load(
        base, target.path, target.kind, coupons, scenario.connections, seconds, tag, credentials
    )
    figures = run_wrk(load)
    time.sleep(0.5)  # let answers wrk stopped waiting for finish their commits
    record: dict[str, Any] = {
        "target": target.name, "api": target.api, "strategy": target.strategy,
        "safe": target.safe, "scenario": scenario.name, "what": scenario.what,
        "connections": scenario.connections, "coupons": scenario.coupons, **figures,
    }  # fmt: skip
    if target.kind != "get":
        distinct = list(dict.fromkeys(coupons))
        ledger = asyncio.run(read_ledger(url, target.api, distinct, scenario.quantity))
        lost = scenario.connections + figures["timeouts"] + figures["socket_errors"]
        record["ledger"] = ledger.as_dict()
        record["problems"] = ledger.problems(figures["ok_2xx"], lost)
    else:
        record["problems"] = []
    # ok: the database's invariants held. 5xx and timeouts are errors of the run, reported
    # beside the figures (a crowd the pool cannot serve in time gets 503), not broken books.
    record["ok"] = not record["problems"]
    verdict = "ok" if record["ok"] else "BROKEN: " + "; ".join(record["problems"])
    if figures["errors_5xx"] or figures["timeouts"]:
        verdict += f" ({figures['errors_5xx']} 5xx, {figures['timeouts']} timeouts)"
    print(
        f"  {target.name:45} {scenario.name:13} {figures['ok_per_s']:>9.0f} ok/s "
        f"{figures['requests_per_s']:>9.0f} req/s  p99 {figures['p99_ms']:7.1f} ms  {verdict}",
        flush=True,
    )
    return record


async def with_connection(url: str, work: Any, *args: Any) -> None:
    connection = await asyncpg.connect(url)
    try:
        await work(connection, *args)
    finally:
        await connection.close()


def write_results(name: str, fields: dict[str, Any]) -> None:
    """results/<name>.json: `fields`, stamped with the time they were written."""
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {RESULTS / name}.json")


def per_request_us(cpu_seconds: dict[str, float], requests: int) -> dict[str, int]:
    """CPU seconds spent, by whatever spent them, as microseconds per answered request."""
    return {who: round(seconds / requests * 1e6) for who, seconds in cpu_seconds.items()}


def run_pgbench(url: str, seconds: float, only: str | None) -> list[dict[str, Any]]:
    if pgbench.pgbench_binary() is None:
        print("pgbench not found: skipping PostgreSQL's ceiling", flush=True)
        return []
    found = []
    for name, script, clients, per_tx, api in pgbench.RUNS:
        if only and only not in name and only not in "pgbench":
            continue
        (coupon,) = asyncio.run(make_coupons(url, 1, HOT_QUANTITY))
        if api == "units":
            asyncio.run(with_connection(url, pgbench.make_unit_pool, coupon))
        if script == "v2_batch_0002.sql":
            asyncio.run(with_connection(url, pgbench.load_replaced_loop))
        figures = pgbench.run_pgbench(url, script, clients, seconds, coupon)
        problems = []
        if api != "units":  # the unit pool does not touch coupon.quantity
            ledger = asyncio.run(read_ledger(url, api, [coupon], HOT_QUANTITY))
            problems = [p for p in ledger.problems(ledger.ledger_rows, 0) if "user holds" not in p]
        claims = round(figures["transactions_per_s"] * per_tx, 1)
        found.append({"name": name, "script": script, "clients": clients,
                      "claims_per_transaction": per_tx, "claims_per_s": claims, **figures,
                      "problems": problems, "ok": not problems})  # fmt: skip
        print(f"  pgbench {name:45} {claims:>9.0f} claims/s  {problems or 'ok'}", flush=True)
    return found


def run_identity(url: str, server: str, run: dict[str, Any], seconds: float, selected: Any) -> None:
    """The hot v2 claim with a user token (HS256, ES256) and a server key per request, beside
    the unauthenticated claim, in turn (benchmarks.identity); the ratios into `run`."""
    print(f"identity on the claim path, in turn, {identity.IDENTITY_ROUNDS} times:", flush=True)
    ways = identity.ways(url, identity.credentials_folder(), seconds)
    for round_ in range(1, identity.IDENTITY_ROUNDS + 1):
        for way in ways:
            target = identity.target(way)
            if not selected(target, identity.SCENARIO):
                continue
            with running_service(url, server, WORKERS, way.settings, way.program) as base:
                record = measure(url, base, target, identity.SCENARIO, seconds, way.credentials)
            run["identity"].append({"server": server, "round": round_, "way": way.name, **record})
    run["identity_ratios"] = identity.ratios(run["identity"])
    for way, ratio in run["identity_ratios"].items():
        print(f"  {way:40} {ratio:.3f}x the unauthenticated claim", flush=True)


def run_holds(url: str, server: str, run: dict[str, Any], seconds: float, selected: Any) -> None:
    """The hot v2 claim on a coupon with a hold beside one without, in turn, then the
    sweeper's cost alone and under the hot claim (benchmarks.holds); figures into `run`."""
    if not selected(holds.target("hold"), holds.SCENARIO):
        return
    print(f"holds: with and without, in turn, {holds.HOLD_ROUNDS} times:", flush=True)
    with running_service(url, server, WORKERS) as base:
        run["holds"]["claims"] = holds.side_by_side(url, base, seconds, measure)
    run["holds"]["ratio"] = holds.ratio(run["holds"]["claims"])
    print(f"  hot claim with a hold: {run['holds']['ratio']:.3f}x the one without", flush=True)
    run["holds"]["sweep_alone"] = asyncio.run(holds.sweep_alone(url))
    print(f"  sweeper alone: {run['holds']['sweep_alone']}", flush=True)
    with running_service(url, server, WORKERS) as base:
        run["holds"]["claims_while_sweeping"] = holds.claims_while_sweeping(url, base, seconds)
    print(f"  hot claim while sweeping: {run['holds']['claims_while_sweeping']}", flush=True)


def run_webhooks(url: str, server: str, run: dict[str, Any], seconds: float, selected: Any) -> None:
    """The hot claim with one webhook endpoint beside none, in turn, and the sender's lag
    (benchmarks.webhooks); figures into `run`."""
    if not selected(webhooks.target(webhooks.WAYS[1]), webhooks.SCENARIO):
        return
    print(f"webhooks: none and one, in turn, {webhooks.ROUNDS} times:", flush=True)
    with running_service(url, server, WORKERS) as base:
        run["webhooks"]["claims"] = webhooks.side_by_side(url, base, seconds, measure)
    run["webhooks"]["ratio"] = webhooks.ratio(run["webhooks"]["claims"])
    print(f"  hot claim with a webhook: {run['webhooks']['ratio']:.3f}x the one without")


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).split("\n")[0],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s per run")
    parser.add_argument("--only", help="run only the targets whose name contains this")
    parser.add_argument("--scenario", nargs="*", help="run only these scenarios (names)")
    parser.add_argument("--server", choices=SERVERS, help="server of the claim runs")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["pgbench", "claims", "targets", "identity", "holds", "webhooks", "servers"],
    )
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    from couponapi.config import Settings

    server = args.server or Settings().server

    def seconds(scenario: Scenario) -> float:
        return QUICK_SECONDS if args.quick else scenario.seconds_full

    def selected(target: Target, scenario: Scenario) -> bool:
        wanted = not args.scenario or scenario.name in args.scenario
        return wanted and (not args.only or args.only in target.name)

    started = time.time()
    run: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "quick": args.quick, "server": server, "workers": WORKERS, "machine": machine(),
        "pgbench": [], "claims": [], "targets": [], "identity": [], "holds": {},
        "webhooks": {}, "servers": [],
    }  # fmt: skip
    with fresh_database(keep=args.keep_database) as url:
        run["postgres"] = report.postgres_version(url)
        if "pgbench" not in args.skip:
            print("PostgreSQL alone (pgbench):", flush=True)
            run["pgbench"] = run_pgbench(url, QUICK_SECONDS if args.quick else 10, args.only)
        if "claims" not in args.skip:
            print(f"claims through the service ({server}, {WORKERS} workers):", flush=True)
            with running_service(url, server, WORKERS) as base:
                for target, scenario in claim_matrix():
                    if selected(target, scenario):
                        run["claims"].append(
                            {"server": server,
                             **measure(url, base, target, scenario, seconds(scenario))}
                        )  # fmt: skip
        if "targets" not in args.skip:
            print(f"the goals, in turn, {TARGET_ROUNDS} times ({server}):", flush=True)
            with running_service(url, server, WORKERS) as base:
                for round_ in range(1, TARGET_ROUNDS + 1):
                    for target, scenario in target_matrix():
                        if selected(target, scenario):
                            record = measure(url, base, target, scenario, seconds(scenario))
                            run["targets"].append({"server": server, "round": round_, **record})
        if "identity" not in args.skip:
            run_identity(url, server, run, seconds(identity.SCENARIO), selected)
        if "holds" not in args.skip:
            run_holds(url, server, run, seconds(holds.SCENARIO), selected)
        if "webhooks" not in args.skip:
            run_webhooks(url, server, run, seconds(webhooks.SCENARIO), selected)
        if "servers" not in args.skip:
            for name in SERVERS:
                print(f"server comparison: {name}, {WORKERS} workers", flush=True)
                with running_service(url, name, WORKERS) as base:
                    for target, scenario in server_matrix():
                        if selected(target, scenario):
                            record = measure(url, base, target, scenario, seconds(scenario))
                            run["servers"].append({"server": name, **record})
    run["minutes"] = round((time.time() - started) / 60, 1)
    # Only a full run replaces the published figures; a partial one goes beside them.
    partial = args.quick or args.only or args.scenario or args.skip
    out = RESULTS / "partial" if partial else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    text = json.dumps(run, indent=1)
    (out / f"run-{stamp}.json").write_text(text)
    (out / "latest.json").write_text(text)
    report.write(run, out)
    print(f"done in {run['minutes']} min: {out / 'RESULTS.md'}", flush=True)


if __name__ == "__main__":
    main()
