"""`python -m benchmarks.inprocess`: the application's own CPU per request, no HTTP, no wrk.

The ASGI app is called directly, 100 requests at a time from one event loop, against a fresh
database on the private PostgreSQL. This process's CPU time (`time.process_time`) divided by
the requests is what the application costs per request: Starlette, the middleware, the
endpoint, group commit and asyncpg, without the HTTP server's parsing and socket writes.
CPU time, not wall time, so it holds on a shared machine far better than requests/s.
Paths: a hot v2 claim (the default strategy), a hot v1 group-commit give, a v2 claim on a
sold-out coupon. Every answer's status is checked. Result: results/inprocess.json.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any
from uuid import UUID

from pydantic import SecretStr
from starlette.types import ASGIApp, Message

from benchmarks.ledger import make_coupons
from benchmarks.run import write_results
from benchmarks.scenarios import HOT_QUANTITY
from benchmarks.service import BENCH_JWT_SECRET, fresh_database
from couponapi.app import create_app
from couponapi.config import Settings
from couponapi.identity.tokens import mint

CONCURRENCY = 100
REQUESTS = 20_000
ROUNDS = 3
# name -> (path template, body template, coupon quantity, expected status). A v2 claim's body
# is empty: each carries a user token of its own, minted before the clock starts.
PATHS: dict[str, tuple[str, bytes, int, int]] = {
    "v2 claim, hot coupon": ("/api/v2/coupons/{}/claims", b"", HOT_QUANTITY, 201),
    "v1 give-group-commit, hot coupon": (
        "/coupon/api/v1/give-group-commit/{}", b'{"userId":"%s"}', HOT_QUANTITY, 200,
    ),
    "v2 claim, sold-out coupon": ("/api/v2/coupons/{}/claims", b"", 0, 409),
}  # fmt: skip


def _tokens(path: str, count: int, tag: str) -> list[bytes]:
    """One `authorization` header value per request of a v2 path (a user each), else none."""
    if not path.startswith("/api/v2/"):
        return []
    return [f"Bearer {mint(BENCH_JWT_SECRET, f'{tag}-{n}')}".encode() for n in range(count)]


async def _drive(
    app: ASGIApp, path: str, body: bytes, count: int, tag: str, tokens: list[bytes] | None = None
) -> dict[int, int]:
    """`count` POSTs of `body` (a new user each) to `path`, CONCURRENCY at a time; a v2 path's
    requests carry `tokens` (minted here when not given)."""
    users = itertools.count()
    statuses: dict[int, int] = {}
    tokens = _tokens(path, count, tag) if tokens is None else tokens

    async def one() -> None:
        n = next(users)
        content = body % f"{tag}-{n}".encode() if body else b""
        auth = [(b"authorization", tokens[n])] if tokens else []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "server": ("127.0.0.1", 1323), "client": ("127.0.0.1", 40000),
            "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(content)).encode()), *auth],
        }  # fmt: skip
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if delivered:  # nobody disconnects: wait as a server would
                await asyncio.Event().wait()
            delivered = True
            return {"type": "http.request", "body": content, "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope, receive, send)

    async def client(share: int) -> None:
        for _ in range(share):
            await one()

    await asyncio.gather(*(client(count // CONCURRENCY) for _ in range(CONCURRENCY)))
    return statuses


async def _measure(url: str) -> list[dict[str, Any]]:
    app = create_app(Settings(database_url=url, jwt_secret=SecretStr(BENCH_JWT_SECRET)))
    found = []
    async with app.router.lifespan_context(app):
        for name, (template, body, quantity, expected) in PATHS.items():
            coupon: UUID = (await make_coupons(url, 1, quantity))[0]
            path = template.format(coupon)
            await _drive(app, path, body, 2_000, f"warm-{coupon}")
            per_request = []
            for round_ in range(ROUNDS):
                tag = f"r{round_}-{coupon}"
                tokens = _tokens(path, REQUESTS, tag)  # the client's work: before the clock
                started = time.process_time()
                statuses = await _drive(app, path, body, REQUESTS, tag, tokens)
                per_request.append((time.process_time() - started) / REQUESTS * 1e6)
                if statuses != {expected: REQUESTS}:
                    raise SystemExit(f"{name}: expected {REQUESTS} x {expected}, got {statuses}")
            record = {"path": name, "us_cpu_per_request": round(statistics.median(per_request)),
                      "rounds_us": [round(x) for x in per_request], "status": expected}  # fmt: skip
            print(f"  {name:38} {record['us_cpu_per_request']:>5} us CPU/request", flush=True)
            found.append(record)
    return found


def main() -> None:
    """Measure every path; write results/inprocess.json."""
    print("application CPU per request, in-process:", flush=True)
    with fresh_database() as url:
        paths = asyncio.run(_measure(url))
    write_results("inprocess", {"concurrency": CONCURRENCY, "requests": REQUESTS,
                                "rounds": ROUNDS, "paths": paths})  # fmt: skip


if __name__ == "__main__":
    main()
