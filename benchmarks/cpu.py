"""`python -m benchmarks.cpu`: where a claim's CPU goes, per component, under wrk.

On 2 cores shared by the server, PostgreSQL and wrk, claims/s is the machine's CPU divided by
the CPU one claim costs all three. This measures that cost: the CPU time (user + system, from
/proc) the server's processes (the `serve` process and its workers), PostgreSQL's processes
and wrk spent during one wrk run, divided by the requests answered. Group commit, one hot
coupon, 100 connections, v1 and v2 (v2 also at 1,000 connections, where batches are larger:
claims/commit), on both servers, alternated twice. CPU time varies less with the other jobs on
the machine than requests/s does, though it does vary (steal time, caches). The database is
checked after every run, as in benchmarks.run. Result: results/cpu.json.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from uuid import UUID

from benchmarks.report import claims_per_commit
from benchmarks.run import WORKERS, measure, per_request_us, write_results
from benchmarks.scenarios import (
    HOT_100,
    HOT_1000,
    V1_GROUP_COMMIT,
    V2_GROUP_COMMIT,
    Scenario,
    Target,
)
from benchmarks.service import fresh_database, running_service, serve_pid
from couponapi.servers import SERVERS

SECONDS = 8.0
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat: str) -> float:
    """User + system CPU seconds in a /proc/<pid>/stat (or .../task/<tid>/stat) text."""
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICK


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), name)
    return found


def _sample(server_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each process of the server's tree and of PostgreSQL.

    Taken fresh each time: pool connections (so PostgreSQL backends) open during a run."""
    processes = _processes()
    tree = {server_pid}
    for _ in range(3):  # serve -> workers -> (their helpers)
        tree |= {pid for pid, (parent, _) in processes.items() if parent in tree}
    groups = {
        "server": sorted(tree),
        "postgres": [pid for pid, (_, name) in processes.items() if name == "postgres"],
    }
    sample: dict[str, dict[int, float]] = {}
    for group, pids in groups.items():
        sample[group] = {}
        for pid in pids:
            try:
                sample[group][pid] = cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
            except OSError:  # ended meanwhile: its time is lost to this sample
                continue
    children = os.times()
    sample["wrk"] = {0: children.children_user + children.children_system}  # wrk is our child
    return sample


def _spent(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds each group spent between two samples (a new process: all of its time)."""
    return {
        group: sum(cpu - before.get(group, {}).get(pid, 0.0) for pid, cpu in pids.items())
        for group, pids in after.items()
    }


def measure_with_cpu(
    url: str,
    base: str,
    target: Target,
    scenario: Scenario,
    seconds: float,
    coupons: list[UUID] | None = None,
) -> dict[str, Any]:
    """`benchmarks.run.measure`'s record (`coupons` as there), with the µs of CPU per answered
    request that the server at `base` (started by running_service), PostgreSQL and wrk spent
    on the run."""
    serve = serve_pid(base)
    before = _sample(serve)
    record = measure(url, base, target, scenario, seconds, coupons=coupons)
    cpu = per_request_us(_spent(before, _sample(serve)), record["requests"])
    print(f"    CPU per request, us: {cpu}; claims/commit {claims_per_commit(record)}", flush=True)
    return {"cpu_us_per_request": cpu, **record}


def main() -> None:
    """Alternate the servers twice; per run, microseconds of CPU per answered request."""
    # v2 at 1,000 connections too: the same claims in larger batches (claims/commit).
    runs_of_each = [
        (V1_GROUP_COMMIT, HOT_100), (V2_GROUP_COMMIT, HOT_100), (V2_GROUP_COMMIT, HOT_1000),
    ]  # fmt: skip
    runs: list[dict[str, Any]] = []
    with fresh_database() as url:
        for _ in range(2):
            for server in SERVERS:
                with running_service(url, server, WORKERS) as base:
                    for target, scenario in runs_of_each:
                        record = measure_with_cpu(url, base, target, scenario, SECONDS)
                        runs.append({"server": server, **record})
    write_results("cpu", {"workers": WORKERS, "seconds": SECONDS, "runs": runs})


if __name__ == "__main__":
    main()
