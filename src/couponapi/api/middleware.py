"""What wraps every request: its id, its log line and metrics, and the security headers.

Pure ASGI on purpose (Starlette's BaseHTTPMiddleware costs tens of microseconds a request):
one function call in, one wrapped `send`, a few list appends.

- Request id: the client's `X-Request-ID` when it is short printable ASCII, else a new one;
  returned in the response and attached to every log line written while serving it.
- Metrics: route template, method, status and latency of every request (the claims metric,
  by strategy and outcome, is counted where a claim is decided: services/claims.py).
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
from couponapi.config import Settings
from couponapi.logs import REQUEST_ID

log = logging.getLogger("couponapi.access")

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_REQUEST_ID_OK = re.compile(rb"[\x21-\x7e]{1,128}")

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def headers_outside() -> dict[str, str]:
    """The headers RequestContext adds, for an answer sent outside it: Starlette's
    ServerErrorMiddleware, which sends the 500, wraps every middleware of the app. The request
    id is still the one of the request that failed (RequestContext keeps it set on error)."""
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    request_id = REQUEST_ID.get()
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return headers


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
    ) -> None:
        self.app = app
        self.csp = (b"content-security-policy", csp.encode())
        self.metrics_enabled = metrics_enabled
        self.access_log = access_log

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
        route = getattr(scope.get("route"), "path_format", None) or "unmatched"
        if self.metrics_enabled:
            metrics.request_child(route, scope["method"], status).observe(seconds)
        if self.access_log:
            log.info(
                "%s %s %d",
                scope["method"],
                route,
                status,
                extra={"fields": {"status": status, "ms": round(seconds * 1000, 3)}},
            )


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
    if settings.v1_access == "admin":
        from couponapi.api.v1.gate import V1Gate  # imports the v1 routes: only when asked

        stack.append(Middleware(V1Gate))
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=[
                    "Content-Type",
                    "Authorization",
                    "X-User-Id",
                    "X-Request-ID",
                    "Idempotency-Key",
                ],
                expose_headers=[
                    "X-Request-ID",
                    "Retry-After",
                    "X-User-Id",
                    "X-Quantity-Left",
                    "Idempotent-Replayed",
                ],
            )
        )
    return stack
