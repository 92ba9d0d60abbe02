"""The few calls a run makes besides claiming: is the server there, which routes does it
serve, how much is left of a coupon, and create one. Failures raise CannotRun with a
message a person can act on (the command line prints it, no traceback)."""

from __future__ import annotations

from uuid import UUID

import aiohttp
import msgspec

from couponapi.loadtest.targets import V1


class CannotRun(Exception):
    """The run cannot start: server unreachable, unknown coupon, route not served, ..."""


async def _get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    try:
        async with session.get(url) as response:
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


async def quantity_left(session: aiohttp.ClientSession, base_url: str, coupon_id: UUID) -> int:
    """What is left of a coupon; CannotRun when the server does not know it."""
    status, coupon = await _get_json(session, f"{base_url}{V1}/{coupon_id}")
    if status == 404:
        raise CannotRun(f"the server has no coupon {coupon_id}")
    if status != 200 or not isinstance(coupon, dict):
        raise CannotRun(f"reading coupon {coupon_id} answered {status}")
    return int(coupon["Quantity"])


async def create_coupon(
    session: aiohttp.ClientSession, base_url: str, quantity: int, name: str
) -> UUID:
    """Create a coupon of `quantity` through the v1 create route; its id."""
    body = {"Name": name, "Type": "race", "Amount": quantity}
    try:
        async with session.post(f"{base_url}{V1}/create", json=body) as response:
            created = await response.json(content_type=None)
            if response.status != 200:
                raise CannotRun(f"creating a coupon answered {response.status}: {created}")
            return UUID(created["id"])
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise CannotRun(f"cannot reach the server at {base_url}: {error}") from None
