"""API keys: what one looks like, and the hash that is all the database keeps of it.

A key is `cpk_<lookup>_<secret>`: `lookup` (12 hex characters) names the key's row without
revealing anything; `secret` is 32 random bytes. The database stores the lookup and the
SHA-256 of the whole key, never the key. A key carries 256 bits of entropy, so a fast hash
is enough (a slow password hash guards guessable secrets, which these are not). Presented
keys are compared hash to hash with hmac.compare_digest: no timing tells a near miss.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

PREFIX = "cpk_"
SCOPES = ("server", "admin")
Scope = Literal["server", "admin"]
_SHAPE = re.compile(r"cpk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # a key's name: what `keys revoke NAME` types


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: `key` is shown once; `lookup` and `digest` are what is stored."""

    key: str
    lookup: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class LiveKey:
    """A key that is not revoked, as every process caches it."""

    lookup: str
    digest: bytes
    name: str
    scope: Scope


def new_key() -> NewKey:
    """A fresh random key."""
    lookup = secrets.token_hex(6)
    key = f"{PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, lookup=lookup, digest=digest_of(key))


def digest_of(key: str) -> bytes:
    """What the database keeps of a key."""
    return hashlib.sha256(key.encode()).digest()


def lookup_of(key: str) -> str | None:
    """The lookup part of a well-formed key, None for anything else."""
    match = _SHAPE.fullmatch(key)
    return match.group(1) if match else None


def matches(key: str, live: LiveKey) -> bool:
    """Whether `key` is `live`, compared in constant time."""
    return hmac.compare_digest(digest_of(key), live.digest)
