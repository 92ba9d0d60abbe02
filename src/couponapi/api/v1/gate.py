"""COUPONAPI_V1_ACCESS=admin: every v1 route behind the admin credential.

v1 keeps the original's wire contract, which has no identity (docs/api-v1.md): open, anyone
claims as anyone. An operator who must keep it served but not open puts it behind the admin
credential with this gate (`off` does not serve it at all: app.py leaves its routes out).
Pure ASGI, ahead of the router: a refused request reads no body and touches no table.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from couponapi.api.auth import ADMIN_MISSING, authenticator_of
from couponapi.api.errors import error_response
from couponapi.api.v1.routes import PREFIX
from couponapi.domain.errors import AuthRefusal, NotPermitted


class V1Gate:
    """Refuses every v1 request that does not carry the admin credential (v1's error shape)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["path"] + "/").startswith(PREFIX + "/"):
            authorization = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
            )
            try:
                principal = await authenticator_of(scope).authenticate(authorization, ADMIN_MISSING)
                if not principal.is_admin:
                    raise NotPermitted("v1 is behind the admin credential on this server")
            except AuthRefusal as refusal:
                response = error_response(refusal.status, str(refusal), refusal.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
