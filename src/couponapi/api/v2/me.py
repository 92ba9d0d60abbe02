"""GET /api/v2/me/claims: the claims of the user a token names, oldest first."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from couponapi.api.auth import authenticate
from couponapi.api.deps import pool_of
from couponapi.api.inputs import page_cursor, page_limit, page_of
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v2.problems import PREFIX, Problem
from couponapi.api.v2.wire import INVALID, PAGE, TAGS, ClaimPage
from couponapi.domain.errors import NotPermitted
from couponapi.services import claims


@operation(
    summary="List my claims, oldest first (a user token; cursor pagination).",
    query=PAGE,
    tags=TAGS,
    signed=True,
    responses={
        200: (ClaimPage, "One page of the token holder's claims ([] when none)."),
        401: (Problem, "No credential."),
        403: (Problem, "Not a valid user token (a key has no claims of its own)."),
        422: INVALID,
    },
)
async def my_claims(request: Request) -> Response:
    """List the token holder's claims."""
    principal = await authenticate(request)
    if not principal.is_user:
        raise NotPermitted("/me is a user token's: a key names users in /users/{user_id}/claims")
    limit = page_limit(request)
    found = await claims.claims_of_user(
        pool_of(request), principal.subject, page_cursor(request), limit + 1
    )
    items, cursor = page_of(found, limit, lambda claim: (claim.claimed_at, claim.id))
    return json_response(ClaimPage(items=items, next_cursor=cursor))


def routes() -> list[Route]:
    """The /me routes."""
    return [Route(f"{PREFIX}/me/claims", my_claims, methods=["GET"])]
