"""Who a v2 claim is for: the token's user, or the `user_id` a server key or the admin names.

A user token needs no body (none, or `{}`); its `user_id`, if sent, must be its `sub` (else
403). The body is read with Starlette's own stream, bounded by COUPONAPI_MAX_BODY_BYTES (413).
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET
from starlette.requests import Request

from couponapi.api.auth import user_for
from couponapi.api.deps import settings_of
from couponapi.api.inputs import InvalidRequest
from couponapi.api.v2.wire import ClaimCreate
from couponapi.identity.principal import Principal

_DECODER = msgspec.json.Decoder(ClaimCreate)


async def _body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def claimant(request: Request, principal: Principal) -> str:
    """The user id the claim is for; 403, 413 or 422 when the request cannot say."""
    declared = request.headers.get("content-length")
    limit = settings_of(request).max_body_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InvalidRequest(413, f"request body over {limit} bytes")
    body = await _body(request, limit)
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
