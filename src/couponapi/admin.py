"""The admin token: who may create and change coupons and read a coupon's claims (v2).

Requests prove it with `Authorization: Bearer <token>`; the token is compared in constant
time (hmac.compare_digest). No header, or not a Bearer one: 401 with WWW-Authenticate; a
wrong token: 403. A server with no token configured refuses every admin request (403): nothing
is open by accident. `serve` makes and keeps a token when none is configured (`token_file`).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request

from couponapi.config import Settings

TOKEN_FILE = "admin-token"  # noqa: S105 (a file name, not a secret)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="couponapi admin"'}


def require_admin(request: Request) -> None:
    """Return when the request carries the admin token; raise 401 or 403 otherwise."""
    settings: Settings = request.app.state.settings
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPException(401, "an admin bearer token is required", headers=CHALLENGE)
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if expected is None or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(403, "the admin token is not valid")


def token_file(data_dir: Path) -> Path:
    """Where `serve` keeps the token it made."""
    return data_dir / TOKEN_FILE


def kept_or_new_token(data_dir: Path) -> tuple[str, bool]:
    """The token kept in `data_dir`, or a new one written there (0600); True when new."""
    path = token_file(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        kept = path.read_text().strip()
        if not kept:
            raise ValueError(f"{path} is empty: delete it to have a new admin token made") from None
        return kept, False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token, True
