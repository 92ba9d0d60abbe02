"""Who may do what (docs/identity.md): the request-side of couponapi.identity.

Routes call one of these first, before reading anything else: `authenticate` (any valid
credential), `require_admin`, `require_server` (a server key or the admin), `reader` (the
coupon reads, open unless COUPONAPI_OPEN_READS=false). Refusals are identity errors
(couponapi.domain.errors): 401 with WWW-Authenticate when no credential was presented, 403
when it is not valid or does not allow the action. The rate limiter, when on, authenticates
a claim before the route does and leaves the outcome in the scope, so a token is verified
once (api/ratelimit.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Scope

from couponapi.api.deps import settings_of
from couponapi.api.inputs import InvalidRequest
from couponapi.domain.errors import AuthRefusal, NotPermitted
from couponapi.identity.authenticator import MISSING, Authenticator
from couponapi.identity.principal import Principal

# Scope key of an authentication done ahead of the route: a Principal or the refusal.
PRINCIPAL = "couponapi.principal"
ADMIN_MISSING = "an admin bearer token is required"


def authenticator_of(scope: Scope) -> Authenticator:
    """The app's authenticator (create_app puts it in app.state)."""
    authenticator: Authenticator = scope["app"].state.authenticator
    return authenticator


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            return text
    return None


async def authenticate_ahead(scope: Scope) -> Principal | None:
    """Authenticate a request before its route, keeping the outcome in the scope for the
    route; the principal, or None when the credential is missing or refused (the route
    answers the refusal)."""
    try:
        principal = await authenticator_of(scope).authenticate(_authorization(scope))
    except AuthRefusal as refusal:
        scope[PRINCIPAL] = refusal
        return None
    scope[PRINCIPAL] = principal
    return principal


async def authenticate(request: Request, missing: str = MISSING) -> Principal:
    """The request's principal; Unauthenticated (401) or CredentialNotValid (403) otherwise."""
    ahead = request.scope.pop(PRINCIPAL, None)
    if isinstance(ahead, Principal):
        return ahead
    if isinstance(ahead, AuthRefusal):
        raise ahead
    return await authenticator_of(request.scope).authenticate(
        _authorization(request.scope), missing
    )


async def require_admin(request: Request) -> Principal:
    """The admin (the admin token or an admin key); 401, or 403 for any other credential."""
    principal = await authenticate(request, ADMIN_MISSING)
    if not principal.is_admin:
        raise NotPermitted("this route needs the admin credential")
    return principal


async def require_server(request: Request) -> Principal:
    """A server key or the admin; 401, or 403 for a user token."""
    principal = await authenticate(request)
    if principal.is_user:
        raise NotPermitted("this route needs a server key or the admin credential")
    return principal


async def reader(request: Request) -> Principal | None:
    """Whoever may read coupons: anyone (None) unless COUPONAPI_OPEN_READS=false."""
    if settings_of(request).open_reads:
        return None
    return await authenticate(request)


def user_for(principal: Principal, user_id: str | None) -> str:
    """The user `principal` acts for when a request names `user_id` (None: names none).

    A user token acts for its `sub` only: another user_id is NotPermitted (403). A server key
    or the admin acts for the user named, who must be named."""
    if principal.is_user:
        if user_id is not None and user_id != principal.subject:
            raise NotPermitted("a user token acts for its own user only (user_id is not sub)")
        return principal.subject
    if user_id is None:
        raise InvalidRequest(422, "user_id is required with a server key or the admin credential")
    return user_id


def may_see_user(principal: Principal, user_id: str) -> None:
    """NotPermitted unless `principal` may read `user_id`'s claims (users: their own only)."""
    if principal.is_user and principal.subject != user_id:
        raise NotPermitted("a user token reads its own claims only (GET /api/v2/me/claims)")
