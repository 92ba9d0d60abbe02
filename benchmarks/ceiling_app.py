"""A v2 group-commit claim with nothing around it: the yardstick of `benchmarks.ceiling`.

It does in the database what the default v2 strategy does: the same claim_coupons_v1 call
per batch, through couponapi's GroupCommitter, codes and pool. It does nothing else: no
Starlette, no middleware (request ids, metrics, security headers), no input checks beyond
decoding the body, no error handling (a failure is granian's bare 500), and it answers the
function's rows as they come. Served by granian with `serve`'s settings:
`python -m benchmarks.ceiling_app --port P --workers N --server granian`, the database in
DATABASE_URL (benchmarks.service.running_service starts it so). Benchmark-only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from uuid import UUID

import asyncpg
import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from couponapi.config import Settings
from couponapi.db.pool import create_pool
from couponapi.db.queries import query
from couponapi.domain.codes import new_codes
from couponapi.servers import run_granian
from couponapi.strategies.batcher import GroupCommitter


class _Body(msgspec.Struct):
    user_id: str


_BODY = msgspec.json.Decoder(_Body)
_JSON = [(b"content-type", b"application/json")]


def app() -> ASGIApp:
    """The factory granian's workers call: POST <anything>/<coupon id> claims; GET is 200."""
    settings = Settings()
    url = settings.database_url
    if url is None:
        raise SystemExit("DATABASE_URL must name the database")
    pools: list[asyncpg.Pool] = []

    async def flush(coupon_id: UUID, user_ids: Sequence[str]) -> list[tuple[int, str]]:
        n = len(user_ids)
        codes, nothing = new_codes(n), [None] * n
        rows = await pools[0].fetch(
            query("claim_coupons"), coupon_id, user_ids, codes, nothing, nothing
        )
        return [(row["status"], row["body"]) for row in rows]

    committer = GroupCommitter(flush)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                pools.append(await create_pool(url, settings))
                await send({"type": "lifespan.startup.complete"})
            await pools[0].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        status, body = 200, "{}"
        if scope["method"] == "POST":
            user = _BODY.decode((await receive())["body"])
            coupon_id = UUID(scope["path"].rsplit("/", 1)[1])
            status, body = await committer.submit(coupon_id, user.user_id)
        await send({"type": "http.response.start", "status": status, "headers": _JSON})
        await send({"type": "http.response.body", "body": body.encode()})

    return serve


def main() -> None:
    """Serve `app` as `couponapi serve --server granian` serves the service."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--server", choices=["granian"], default="granian")
    options = parser.parse_args()
    settings = Settings(port=options.port, workers=options.workers)
    run_granian(settings, app="benchmarks.ceiling_app:app")


if __name__ == "__main__":
    main()
