"""`couponapi keys create|list|revoke` and `couponapi token`: API keys and user tokens from
the command line (docs/identity.md).

`keys` works on the database `serve` uses (DATABASE_URL, else the private server, started
for the command if needed). `keys create` prints the new key as the last line of its output,
alone, so a script can take it with `tail -n 1`; it is shown this once and stored nowhere.
`token USER` mints an HS256 token with COUPONAPI_JWT_SECRET, else the secret `serve` keeps
in the data directory (made now if there is none yet, as `serve` would).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

import asyncpg

from couponapi.admin_token import JWT_SECRET_FILE, kept_or_new_token
from couponapi.config import Settings
from couponapi.domain.errors import CouponError
from couponapi.identity.keys import NAME, SCOPES
from couponapi.identity.tokens import mint
from couponapi.services import keys

COMMANDS = ("keys", "token")
DEFAULT_TTL_S = 3_600


def add_parsers(commands: Any) -> None:
    """Add the `keys` and `token` subcommands to the CLI's subparsers."""
    keys_parser = commands.add_parser("keys", help="API keys for servers and admins")
    actions = keys_parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key; prints it last, once")
    create.add_argument("name", help="what the key is for, e.g. checkout (letters, digits, ._-)")
    create.add_argument("--scope", choices=SCOPES, required=True, help="server or admin")
    actions.add_parser("list", help="every key, live and revoked (never the keys)")
    revoke = actions.add_parser("revoke", help="revoke the live key of this name")
    revoke.add_argument("name")
    token = commands.add_parser("token", help="mint a user token (HS256) for development")
    token.add_argument("user", help="the user id the token names (its sub)")
    token.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL_S, help=f"seconds valid (default {DEFAULT_TTL_S})"
    )


def jwt_secret(settings: Settings) -> str:
    """The HS256 secret tokens are signed with: configured, or kept in the data directory."""
    if settings.jwt_public_key is not None:
        raise ValueError("this server verifies tokens with a public key: mint them where the "
                         "private key is")  # fmt: skip
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    return kept_or_new_token(settings.data_dir, JWT_SECRET_FILE)[0]


def token_command(settings: Settings, args: argparse.Namespace) -> None:
    """Print a token for `args.user`."""
    if not 1 <= args.ttl <= 366 * 86_400:
        raise ValueError("--ttl must be 1 second to a year")
    if re.fullmatch(r"[^\x00-\x1f\x7f]{1,128}", args.user) is None:
        raise ValueError("a user id is 1 to 128 printable characters")
    print(mint(jwt_secret(settings), args.user, args.ttl))


async def _keys(url: str, args: argparse.Namespace) -> list[str]:
    async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
        if args.action == "create":
            if re.fullmatch(NAME, args.name) is None:
                raise ValueError("a key name is 1-64 letters, digits, '.', '_' or '-'")
            record, key = await keys.create_key(pool, args.name, args.scope)
            return [
                f"created {record.scope} key {record.name!r} at {record.created_at.isoformat()}",
                "the key is shown only now; use it as: Authorization: Bearer <key>",
                key,
            ]
        if args.action == "revoke":
            revoked = await keys.revoke_key(pool, args.name)
            return [f"revoked {revoked.scope} key {revoked.name!r}: refused everywhere within 1 s"]
        found = await keys.list_keys(pool)
        lines = [f"{'name':24} {'scope':7} {'created':25} revoked"]
        lines += [
            f"{k.name:24} {k.scope:7} {k.created_at.isoformat(timespec='seconds'):25} "
            f"{k.revoked_at.isoformat(timespec='seconds') if k.revoked_at else '-'}"
            for k in found
        ]
        return lines


def keys_command(url: str, args: argparse.Namespace) -> None:
    """Run `keys <action>` against the database at `url` and print its lines."""
    try:
        lines = asyncio.run(_keys(url, args))
    except CouponError as refusal:
        raise ValueError(str(refusal)) from None
    print("\n".join(lines))
