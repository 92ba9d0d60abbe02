"""`python -m benchmarks.profile [--scenario hot-100|hot-1000] [--api v1|v2]`: where a worker's
time goes while the default v2 strategy (or v1 group commit) serves one hot coupon.

py-spy samples one of the 2 workers for the run; results/profile-<api>-<scenario>.svg is the
flame graph and results/profile-<api>-<scenario>.txt the frames with the most samples (own and
total). `--native` adds C and Rust frames and every thread (granian's I/O thread included):
results/profile-<api>-<scenario>-native.*.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.ledger import make_coupons
from benchmarks.run import RESULTS, WORKERS
from benchmarks.scenarios import HOT_100, HOT_1000, V1_GROUP_COMMIT, V2_GROUP_COMMIT
from benchmarks.service import fresh_database, running_service, serve_pid
from benchmarks.wrk import Load, run_wrk
from couponapi.config import Settings
from couponapi.servers import SERVERS


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is missing: pip install -e '.[bench]'")
    return found


def summary(raw: Path, top: int = 30) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    lines = [f"{samples} samples", "", "own time (the frame itself, C calls included):"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "total time (the frame and everything it calls):"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.profile", description=__doc__)
    parser.add_argument("--scenario", choices=["hot-100", "hot-1000"], default="hot-100")
    parser.add_argument("--api", choices=["v1", "v2"], default="v2")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--server", choices=SERVERS, help="default: serve's default")
    parser.add_argument(
        "--native", action="store_true", help="C and Rust frames too, every thread (-native)"
    )
    args = parser.parse_args()
    scenario = HOT_100 if args.scenario == "hot-100" else HOT_1000
    target = V2_GROUP_COMMIT if args.api == "v2" else V1_GROUP_COMMIT
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"profile-{args.api}-{scenario.name}{'-native' if args.native else ''}"
    server = args.server or Settings().server
    with fresh_database() as url, running_service(url, server, WORKERS) as base:
        coupons = asyncio.run(make_coupons(url, 1, scenario.quantity))
        parent = serve_pid(base)
        workers = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
        worker = workers.stdout.split()[-1]
        record = [py_spy(), "record", "-p", worker, "-d", str(int(args.seconds))]
        # Native frames need the process paused while sampled (py-spy refuses otherwise).
        record += ["--native", "--threads"] if args.native else ["--nonblocking"]
        spies = [
            subprocess.Popen([*record, "-f", fmt, "-o", f"{stem}.{ext}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for fmt, ext in (("raw", "raw"), ("flamegraph", "svg"))
        ]  # fmt: skip
        time.sleep(0.5)
        load = Load(base, target.path, target.kind, coupons, scenario.connections,
                    args.seconds, f"profile-{time.time_ns()}")  # fmt: skip
        figures = run_wrk(load)
        for spy in spies:
            spy.wait(timeout=60)
    header = f"{target.name}, {scenario.what}: {figures}\n\n"
    Path(f"{stem}.txt").write_text(header + summary(Path(f"{stem}.raw")))
    Path(f"{stem}.raw").unlink()
    print(f"{stem}.txt and {stem}.svg")


if __name__ == "__main__":
    main()
