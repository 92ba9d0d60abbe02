"""What wraps every request: its id, its log line and metrics, and the security headers.

Pure ASGI on purpose (Starlette's BaseHTTPMiddleware costs tens of microseconds a request):
one function call in, one wrapped `send`, a few list appends.

- Request id: the client's `X-Request-ID` when it is short printable ASCII, else a new one;
  returned in the response and attached to every log line written while serving it.
- Metrics: route template, method, status and latency of every request; for claim routes,
  the strategy and the outcome (a domain error's name, set by api/errors.py in the scope).
- Security headers on every response; a Content-Security-Policy on HTML pages that admits
  only our own assets and the inline scripts we ship, named by their SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import os
import re
import time
from collections.abc import Iterable

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from couponapi import metrics
from couponapi.api.ratelimit import RateLimit
from couponapi.api.v2_input import named_strategy
from couponapi.config import Settings
from couponapi.logging import REQUEST_ID
from couponapi.strategies.v2 import CLAIM_STRATEGIES

log = logging.getLogger("couponapi.access")

OUTCOME_KEY = "couponapi.outcome"  # set by api/errors.py when a domain error answers
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_REQUEST_ID_OK = re.compile(rb"[\x21-\x7e]{1,128}")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def content_security_policy(pages: Iterable[str]) -> str:
    """A CSP for our HTML pages: own assets only, plus the inline scripts of `pages` by hash.

    Swagger UI sets inline styles and uses data: images, hence those two allowances."""
    hashes = sorted(
        {
            "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
            for page in pages
            for script in _INLINE_SCRIPT.findall(page.encode())
        }
    )
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *hashes]),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


_PROCESS_PREFIX = os.urandom(4).hex()  # unique per process, so ids do not clash across workers
_SEQUENCE = itertools.count(1)


def _new_request_id() -> bytes:
    """`<8 hex of this process>-<sequence in hex>`: unique, and cheaper than random bytes."""
    return f"{_PROCESS_PREFIX}-{next(_SEQUENCE):x}".encode()


class RequestContext:
    """Request id, access log, metrics and security headers, in one cheap layer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        csp: str,
        metrics_enabled: bool = True,
        access_log: bool = False,
        default_claim_strategy: str = metrics.V2,
        claim_strategies: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.default_claim_strategy = default_claim_strategy
        self.claim_strategies = frozenset(claim_strategies)
        self.csp = (b"content-security-policy", csp.encode())
        self.metrics_enabled = metrics_enabled
        self.access_log = access_log
        self._routes: dict[tuple[int, str], tuple[str, str | None]] = {}
        Labels = tuple[tuple[str, str, str], tuple[str, str] | None]
        self._labels: dict[tuple[object, ...], Labels] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _REQUEST_ID_OK.fullmatch(value):
                    request_id = value
                break
        request_id = request_id or _new_request_id()
        context = REQUEST_ID.set(request_id.decode())
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the response's own header list is left as it was.
                headers = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id),
                    *SECURITY_HEADERS,
                ]
                for name, value in headers:
                    if name == b"content-type" and value.startswith(b"text/html"):
                        headers.append(self.csp)
                        break
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:  # a failure is counted too (as 500 unless an answer had started)
            if self.metrics_enabled or self.access_log:
                self._record(scope, status, time.perf_counter() - started)
        # Reset only on success: an exception goes on to be logged, with this request's id.
        REQUEST_ID.reset(context)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        # Routes live as long as the app, so their ids stay theirs.
        known = self._routes.get((id(route), scope["method"]))
        if known is None:
            known = self._routes[id(route), scope["method"]] = self._describe(
                route, scope["method"]
            )
        path, strategy = known
        if self.metrics_enabled:
            if strategy == metrics.V2:
                strategy = self._v2_strategy(scope)
            # Every label below is bounded (routes, statuses, strategies, domain error names),
            # so this cache is too.
            key = (id(route), scope["method"], status, strategy, scope.get(OUTCOME_KEY))
            labels = self._labels.get(key)
            if labels is None:
                labels = self._labels[key] = (
                    (path, scope["method"], str(status)),
                    None if strategy is None else (strategy, _outcome(scope, status)),
                )
            latency, claim = labels
            metrics.TALLY.request(latency, seconds)
            if claim is not None:
                metrics.TALLY.claim(claim)
        if self.access_log:
            log.info(
                "%s %s %d",
                scope["method"],
                path,
                status,
                extra={"fields": {"status": status, "ms": round(seconds * 1000, 3)}},
            )

    @staticmethod
    def _describe(route: object, method: str) -> tuple[str, str | None]:
        """A route's template (the latency label) and, for a claim route, its strategy."""
        path = getattr(route, "path", None) or "unmatched"
        strategy = getattr(getattr(route, "endpoint", None), "__claim_strategy__", None)
        if strategy is None and method == "POST":
            strategy = metrics.claim_strategy(path)
        return path, strategy

    def _v2_strategy(self, scope: Scope) -> str:
        name = named_strategy(scope)
        if name is None:
            return self.default_claim_strategy
        # Only known names become labels: a client cannot mint time series.
        return name if name in self.claim_strategies else "unknown"


def _outcome(scope: Scope, status: int) -> str:
    if 200 <= status < 300:
        return "granted"
    error = scope.get(OUTCOME_KEY)
    if error is not None:
        return metrics.outcome_name(error)
    if status == 429:
        return "rate_limited"
    if status == 503:
        return "unavailable"
    return "rejected" if status < 500 else "error"


def middleware_stack(settings: Settings, html_pages: Iterable[str]) -> list[Middleware]:
    """The middleware create_app installs, outermost first; the optional ones only when on."""
    stack: list[Middleware] = []
    proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    if proxies:
        # Rewrites the client address from X-Forwarded-For, only for these peers.
        stack.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies))
    stack.append(
        Middleware(
            RequestContext,
            csp=content_security_policy(html_pages),
            metrics_enabled=settings.metrics,
            access_log=settings.access_log,
            default_claim_strategy=getattr(settings, "claim_strategy", metrics.V2),
            claim_strategies=CLAIM_STRATEGIES,
        )
    )
    if settings.rate_limit > 0:
        stack.append(
            Middleware(
                RateLimit,
                rate=settings.rate_limit,
                burst=settings.rate_limit_burst,
                key=settings.rate_limit_key,
            )
        )
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Content-Type", "X-User-Id", "X-Request-ID", "Idempotency-Key"],
                expose_headers=["X-Request-ID", "Retry-After"],
            )
        )
    return stack
