"""Who a v2 claim is for: the token's user, or the `user_id` a server key or the admin names.

A user token needs no body (none, or `{}`); its `user_id`, if sent, must be its `sub` (else
403). The body is bounded by COUPONAPI_MAX_BODY_BYTES (413), as every body is.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET
from starlette.requests import Request

from couponapi.api.auth import user_for
from couponapi.api.deps import settings_of
from couponapi.api.inputs import InvalidRequest, read_body
from couponapi.api.v2.wire import ClaimCreate
from couponapi.identity.principal import Principal

_DECODER = msgspec.json.Decoder(ClaimCreate)


async def claimant(request: Request, principal: Principal) -> str:
    """The user id the claim is for; 403, 413 or 422 when the request cannot say."""
    body = await read_body(request, settings_of(request).max_body_bytes)
    named: str | None = None
    if body.strip():
        try:
            decoded = _DECODER.decode(body)
        except msgspec.ValidationError as error:
            raise InvalidRequest(422, str(error)) from None
        except msgspec.DecodeError as error:
            raise InvalidRequest(422, f"malformed JSON body: {error}") from None
        named = None if decoded.user_id is UNSET else decoded.user_id
    return user_for(principal, named)
