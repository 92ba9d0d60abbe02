"""Who may call the admin routes: create and change coupons, read a coupon's claims.

Requests prove it with `Authorization: Bearer <token>`; the token is compared in constant
time (hmac.compare_digest). No header, or not a Bearer one: 401 with WWW-Authenticate; a
wrong token: 403. A server with no token configured refuses every admin request (403): nothing
is open by accident (`serve` makes and keeps one: couponapi.admin_token).
"""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request

from couponapi.api.deps import settings_of

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="couponapi admin"'}


def require_admin(request: Request) -> None:
    """Return when the request carries the admin token; raise 401 or 403 otherwise."""
    settings = settings_of(request)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(401, "an admin bearer token is required", headers=CHALLENGE)
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if expected is None or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(403, "the admin token is not valid")
