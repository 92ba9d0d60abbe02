"""Running wrk with claim.lua and reading the one `BENCH {...}` line its done() prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

SCRIPT = Path(__file__).with_name("claim.lua")
TIMEOUT_S = 2  # a request unanswered after 2 s counts as a timeout


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is missing: run benchmarks/ensure-tools (or apt-get install wrk)")
    return found


@dataclass(frozen=True)
class Load:
    """One wrk run: who is called, how hard, how long."""

    base_url: str
    path: str  # with {coupon}
    kind: str  # v1 | v2 | get (see claim.lua)
    coupons: list[UUID]
    connections: int
    seconds: float
    tag: str
    credentials: Path | None = None  # claim.lua's credentials file (v2token, v2key)


def run_wrk(load: Load) -> dict[str, Any]:
    """Fire `load`; the counts and latencies (ms) wrk measured, plus claims/s figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as ids:
        ids.write("\n".join(str(c) for c in load.coupons) + "\n")
    try:
        command = [
            wrk_binary(), "-t", "2", "-c", str(load.connections),
            "-d", f"{load.seconds:g}s", "--timeout", f"{TIMEOUT_S}s",
            "-s", str(SCRIPT), load.base_url, "--", load.path, ids.name, load.tag, load.kind,
        ]  # fmt: skip
        if load.credentials is not None:
            command.append(str(load.credentials))
        env = {**os.environ, "BENCH_STATUSES": "1"}
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=load.seconds + 60
        )
    finally:
        os.unlink(ids.name)
    line = next((x for x in result.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{result.stdout}\n{result.stderr}")
    raw = json.loads(line.removeprefix("BENCH "))
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "ok_2xx": raw["s2xx"],
        "refused_4xx": raw["s4xx"],
        "errors_5xx": raw["s5xx"],
        "timeouts": raw["timeout"],
        "socket_errors": raw["connect"] + raw["read"] + raw["write"],
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "ok_per_s": round(raw["s2xx"] / seconds, 1),
        "p50_ms": raw["p50"] / 1000,
        "p90_ms": raw["p90"] / 1000,
        "p99_ms": raw["p99"] / 1000,
        "p999_ms": raw["p999"] / 1000,
        "max_ms": raw["max"] / 1000,
    }
