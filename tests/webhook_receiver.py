"""A Standard Webhooks receiver for the tests: an aiohttp server on 127.0.0.1 that verifies
every delivery's signature with the standardwebhooks library and records it, and the feed
read back through the API to compare with.

Each path is one endpoint: `secrets[path]` verifies its deliveries, `script[path]` holds the
answers to give first (then `otherwise[path]`, by default 200 "ok"). A delivery is recorded
when it arrives, before it is answered, so one cut off mid-answer is still seen.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support import free_port

V2 = "/api/v2"
HOLD_S = 10.0  # the longest a held delivery waits for `hold` to open


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one delivery."""

    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Arrival:
    """One delivery as it arrived: the path, `webhook-id`, the body (raw and parsed), the
    headers (names in lower case), whether its signature verified, and the status answered
    (None: not yet)."""

    path: str
    webhook_id: str
    raw: bytes
    body: dict[str, Any]
    headers: dict[str, str]
    verified: bool
    status: int | None = None


class Receiver:
    """The receiving end of the tests' webhooks (see the module's docstring)."""

    def __init__(self, port: int | None = None, delay_s: float = 0.0) -> None:
        self.port = port or free_port()
        self.delay_s = delay_s  # how long every answer takes
        self.secrets: dict[str, str] = {}
        self.script: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self.otherwise: defaultdict[str, Reply] = defaultdict(Reply)
        self.arrivals: list[Arrival] = []
        self.hold: asyncio.Event | None = None  # when set up, answers wait for it to open
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        """The URL of one of the receiver's endpoints."""
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Arrival]:
        """Every delivery that arrived at `path`, in arrival order."""
        return [a for a in self.arrivals if a.path == path]

    def delivered(self, path: str) -> list[Arrival]:
        """The deliveries to `path` that were answered 2xx, in arrival order."""
        return [a for a in self.at(path) if a.status is not None and 200 <= a.status < 300]

    def in_flight(self) -> list[Arrival]:
        """The deliveries that arrived and are not answered yet."""
        return [a for a in self.arrivals if a.status is None]

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        secret = self.secrets.get(request.path)
        try:
            body = Webhook(secret).verify(raw, headers) if secret else None
        except WebhookVerificationError:
            body = None
        arrival = Arrival(
            request.path, headers.get("webhook-id", ""), raw,
            body if body is not None else {}, headers, verified=body is not None,
        )  # fmt: skip
        self.arrivals.append(arrival)
        if not arrival.verified:
            arrival.status = 401
            return web.Response(status=401, text="signature not valid")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.hold is not None:
            await asyncio.wait_for(self.hold.wait(), HOLD_S)
        queued = self.script[request.path]
        reply = queued.popleft() if queued else self.otherwise[request.path]
        arrival.status = reply.status
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers)

    async def start(self) -> None:
        """Listen on 127.0.0.1:port (again, after `stop`)."""
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop listening: deliveries find nobody there (connection refused)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> bool:
    """Poll `check` until it is true, for at most `seconds` (and 2,000 tries)."""
    deadline = time.monotonic() + seconds
    for _ in range(2_000):
        if await check():
            return True
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return False


async def read_feed(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every event GET /api/v2/events lists now, oldest first (at most 100 pages)."""
    items: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(100):
        answer = await client.get(
            f"{V2}/events", params={"after": cursor, "limit": 200}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"]
        if not page["items"]:
            return items
        cursor = page["next_cursor"]
    raise AssertionError("the feed did not end within 100 pages")
