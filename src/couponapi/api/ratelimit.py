"""Rate limiting of claims: a token bucket per client, 429 with Retry-After when it is empty.

Off by default (`COUPONAPI_RATE_LIMIT=0`): a load generator on one host is one client, and a
shop's proxy hides its users' addresses. When on, each key may claim `rate` times a second
on average with bursts of `burst`. A v2 claim with a valid credential is counted under its
authenticated subject (the token's user, the key's name): the limiter authenticates it and
leaves the outcome in the scope for the route (api/auth.py), so a token is verified once.
Otherwise the key is the client's address (`client`), or the X-User-Id header, falling back
to the address (`user`): v1 has no identity, and a refused credential proves nothing. The
address is the TCP peer's, or the one X-Forwarded-For names when the peer is a configured
trusted proxy (`COUPONAPI_TRUSTED_PROXIES`; app.py installs uvicorn's ProxyHeadersMiddleware).

The buckets live in the process: with N workers a client gets up to N x rate, depending on
which worker its connections land. Only the claim routes are limited (metrics.CLAIM_ROUTE).
"""

from __future__ import annotations

import math
import re
import time

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from couponapi import metrics
from couponapi.api.auth import authenticate_ahead

MAX_KEYS = 100_000


# The claim routes, by request path: v1's POST .../give*/{id} and v2's POST .../claims.
CLAIM_PATH = re.compile(r"^/coupon/api/v1/give[\w-]*/[^/]+$|^/api/v2/coupons/[^/]+/claims$")
V2_CLAIM_PATH = re.compile(r"^/api/v2/")


class TokenBucket:
    """Buckets of `burst` tokens refilled at `rate` a second, one per key, in memory."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str | bytes, tuple[float, float]] = {}

    def take(self, key: str | bytes, now: float) -> float:
        """Take a token: 0.0 when granted, else the seconds until one is there."""
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens >= 1.0:
            if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
                self._forget_full(now)
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold no information); bounds memory."""
        full_after = self.burst / self.rate
        self._buckets = {
            key: entry for key, entry in self._buckets.items() if now - entry[1] < full_after
        }


class RateLimit:
    """ASGI middleware that refuses claims over the limit with 429 and Retry-After."""

    def __init__(self, app: ASGIApp, *, rate: float, burst: int, key: str = "client") -> None:
        self.app = app
        self.bucket = TokenBucket(rate, burst)
        self.by_user = key == "user"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or CLAIM_PATH.match(scope["path"]) is None
        ):
            await self.app(scope, receive, send)
            return
        principal = None
        if V2_CLAIM_PATH.match(scope["path"]):
            principal = await authenticate_ahead(scope)
        key = principal.rate_key if principal is not None else self._key(scope)
        wait = self.bucket.take(key, time.monotonic())
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        metrics.RATE_LIMITED.inc()
        retry_after = str(max(1, math.ceil(wait)))
        body = msgspec.json.encode(
            {"code": 429, "errorDescription": f"too many claims: retry in {retry_after} s"}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", retry_after.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _key(self, scope: Scope) -> str | bytes:
        if self.by_user:
            for name, value in scope["headers"]:
                if name == b"x-user-id":
                    user: bytes = value
                    return b"u:" + user
        client = scope.get("client")
        return f"a:{client[0]}" if client else "a:unknown"
