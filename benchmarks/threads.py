"""`python -m benchmarks.threads`: a worker's CPU per claim, thread by thread, under wrk.

`benchmarks.cpu` splits a claim's CPU between the server, PostgreSQL and wrk; this splits the
server's share between the threads of its workers: the event loop (each worker's main
thread) and the server's own threads (granian's tokio runtime and its Python-side thread;
uvicorn has none). Group commit, one hot coupon, 100 connections, three kinds of request, in
turn, twice: v1 with the user in a header (no body), v1 with the user in a JSON body, and v2
(a JSON body). The first two differ only in reading a body, which is how the cost of a
`receive()` hand-over between granian's threads and the event loop was found (README
"Performance"). The database is checked after every run. Result: results/threads.json.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.cpu import cpu_seconds
from benchmarks.run import WORKERS, measure, per_request_us, write_results
from benchmarks.scenarios import HOT_100, V1, V2_GROUP_COMMIT, Target
from benchmarks.service import fresh_database, running_service, serve_pid
from couponapi.config import Settings

SECONDS = 8.0
TARGETS = [
    Target("v1 group_commit, user in a header", "v1", "group_commit",
           V1 + "/give-group-commit/{coupon}", "v1"),
    Target("v1 group_commit, user in a JSON body", "v1", "group_commit",
           V1 + "/give-group-commit/{coupon}", "v1body"),
    V2_GROUP_COMMIT,
]  # fmt: skip


def _threads(workers: list[int]) -> defaultdict[str, float]:
    """CPU seconds so far of the workers' threads, summed by thread name."""
    spent: defaultdict[str, float] = defaultdict(float)
    for worker in workers:
        for task in Path(f"/proc/{worker}/task").iterdir():
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            if task.name == str(worker):
                name = "event loop"
            spent[name] += cpu_seconds(stat)
    return spent


def main() -> None:
    """Each target twice, in turn; per run, microseconds of CPU per request by thread."""
    server = Settings().server
    runs: list[dict[str, Any]] = []
    with fresh_database() as url, running_service(url, server, WORKERS) as base:
        found = subprocess.run(["pgrep", "-P", str(serve_pid(base))],
                               capture_output=True, text=True, check=True)  # fmt: skip
        workers = [int(pid) for pid in found.stdout.split()]
        for _ in range(2):
            for target in TARGETS:
                before = _threads(workers)
                record = measure(url, base, target, HOT_100, SECONDS)
                after = _threads(workers)
                spent = {name: seconds - before[name] for name, seconds in after.items()}
                cpu = per_request_us(spent, record["requests"])
                print(f"    CPU per request by thread, us: {cpu}", flush=True)
                runs.append({"server": server, "cpu_us_per_request_by_thread": cpu, **record})
    write_results("threads", {"workers": WORKERS, "seconds": SECONDS, "runs": runs})


if __name__ == "__main__":
    main()
