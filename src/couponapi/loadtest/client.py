"""The few calls a run makes besides claiming: is the server there, which routes does it
serve, how much is left of a coupon, and create one (v2, with the admin credential).
Failures raise CannotRun with a message a person can act on (the command line prints it)."""

from __future__ import annotations

from uuid import UUID

import aiohttp
import msgspec

from couponapi.loadtest.credentials import Credentials

V2_COUPONS = "/api/v2/coupons"


class CannotRun(Exception):
    """The run cannot start: server unreachable, unknown coupon, route not served, ..."""


async def _get_json(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, object]:
    try:
        async with session.get(url, headers=headers) as response:
            body = await response.read()
            return response.status, msgspec.json.decode(body) if body else None
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise CannotRun(
            f"cannot reach the server at {url}: {error or type(error).__name__}"
        ) from None
    except msgspec.DecodeError:
        raise CannotRun(f"{url} did not answer JSON: is this a couponapi server?") from None


async def served_paths(session: aiohttp.ClientSession, base_url: str) -> set[str]:
    """The paths the server's OpenAPI document lists."""
    status, document = await _get_json(session, f"{base_url}/openapi.json")
    if status != 200 or not isinstance(document, dict) or "paths" not in document:
        raise CannotRun(f"{base_url} is not a couponapi server (no OpenAPI document)")
    return set(document["paths"])


async def quantity_left(
    session: aiohttp.ClientSession, base_url: str, coupon_id: UUID, credentials: Credentials
) -> int:
    """What is left of a coupon (v2's `remaining`); CannotRun when the server does not know it."""
    url = f"{base_url}{V2_COUPONS}/{coupon_id}"
    status, coupon = await _get_json(session, url, credentials.admin_headers())
    if status == 404:
        raise CannotRun(f"the server has no coupon {coupon_id}")
    if status != 200 or not isinstance(coupon, dict):
        raise CannotRun(f"reading coupon {coupon_id} answered {status}")
    return int(coupon["remaining"])


async def create_coupon(
    session: aiohttp.ClientSession,
    base_url: str,
    quantity: int,
    name: str,
    credentials: Credentials,
) -> UUID:
    """Create a coupon of `quantity` through v2 (the admin credential); its id."""
    if credentials.admin is None:
        raise CannotRun(
            "creating a coupon needs the admin token: --admin-token, COUPONAPI_ADMIN_TOKEN, "
            "or run from the directory `serve` keeps it in"
        )
    body = {"name": name, "type": "race", "quantity": quantity}
    try:
        async with session.post(
            f"{base_url}{V2_COUPONS}", json=body, headers=credentials.admin_headers()
        ) as response:
            created = await response.json(content_type=None)
            if response.status != 201:
                raise CannotRun(f"creating a coupon answered {response.status}: {created}")
            return UUID(created["id"])
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise CannotRun(f"cannot reach the server at {base_url}: {error}") from None
