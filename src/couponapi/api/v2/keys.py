"""/api/v2/keys (admin): create a server or admin key (shown once), list them, revoke one.

The key itself is in the creation's answer and nowhere else: the database keeps its SHA-256
(couponapi.identity.keys). A revoked key is refused by every process within a second.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from couponapi.api.auth import require_admin
from couponapi.api.deps import pool_of
from couponapi.api.inputs import read_json
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v2.problems import PREFIX, Problem
from couponapi.api.v2.wire import AUTH, INVALID
from couponapi.identity.keyring import KeyRing
from couponapi.identity.keys import NAME
from couponapi.services import keys
from couponapi.services.keys import ApiKey

TAGS = ("v2 keys (admin)",)


def keyring_of(request: Request) -> KeyRing:
    """The process's key ring (create_app puts it in app.state)."""
    keyring: KeyRing = request.app.state.keyring
    return keyring


KeyName = Annotated[str, Meta(pattern=NAME)]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new key: `server` claims for any user, releases and redeems; `admin` does all."""

    name: KeyName
    scope: Literal["server", "admin"]


class KeyPublic(msgspec.Struct):
    """A key as listed: its name, scope and times, never the key."""

    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyPublic:
        """The wire form of a key's record."""
        return cls(key.name, key.scope, key.created_at, key.revoked_at)


class KeyCreated(KeyPublic):
    """A key just made, with `key`: shown this once, stored nowhere."""

    key: str = ""


class KeyList(msgspec.Struct):
    """Every key, live and revoked, oldest first."""

    items: list[KeyPublic]


@operation(
    summary="Create an API key (admin); the answer holds the key, shown once.",
    tags=TAGS,
    body=KeyCreate,
    admin=True,
    responses={
        201: (KeyCreated, "Created: `key` is the credential (Authorization: Bearer <key>)."),
        **AUTH,
        409: (Problem, "A live key has this name."),
        413: (Problem, "Body too large."),
        422: INVALID,
    },
)
async def create_key(request: Request) -> Response:
    """Create an API key (admin)."""
    await require_admin(request)
    body = await read_json(request, KeyCreate)
    record, key = await keys.create_key(pool_of(request), body.name, body.scope)
    await keyring_of(request).refresh()  # this process knows it at once (others within 1 s)
    public = KeyPublic.of(record)
    made = KeyCreated(public.name, public.scope, public.created_at, public.revoked_at, key=key)
    return json_response(made, status=201)


@operation(
    summary="List the API keys, live and revoked (admin).",
    tags=TAGS,
    admin=True,
    responses={200: (KeyList, "Every key, oldest first."), **AUTH},
)
async def list_keys(request: Request) -> Response:
    """List the API keys (admin)."""
    await require_admin(request)
    found = await keys.list_keys(pool_of(request))
    return json_response(KeyList(items=[KeyPublic.of(key) for key in found]))


@operation(
    summary="Revoke the live key of this name (admin): refused everywhere within a second.",
    tags=TAGS,
    admin=True,
    path_formats={"name": ""},
    responses={
        200: (KeyPublic, "Revoked."),
        **AUTH,
        404: (Problem, "No live key has this name."),
    },
)
async def revoke_key(request: Request) -> Response:
    """Revoke an API key (admin)."""
    await require_admin(request)
    revoked = await keys.revoke_key(pool_of(request), request.path_params["name"])
    await keyring_of(request).refresh()  # refused here at once, everywhere within a second
    return json_response(KeyPublic.of(revoked))


def routes() -> list[Route]:
    """The key routes."""
    return [
        Route(f"{PREFIX}/keys", create_key, methods=["POST"]),
        Route(f"{PREFIX}/keys", list_keys, methods=["GET"]),
        Route(f"{PREFIX}/keys/{{name}}", revoke_key, methods=["DELETE"]),
    ]
