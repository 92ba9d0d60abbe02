"""The principal a request acts as: a user (from a token), a server key, or the admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["user", "server", "admin"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking. `subject` is the user id for a user, the key's name for a key, and
    `admin-token` for the configured admin token; `kind` says what it may do."""

    kind: Kind
    subject: str

    @property
    def is_user(self) -> bool:
        """A user token: acts for `subject` only."""
        return self.kind == "user"

    @property
    def is_admin(self) -> bool:
        """May do everything, coupons and keys included."""
        return self.kind == "admin"

    @property
    def rate_key(self) -> str:
        """What the rate limiter counts this principal's claims under."""
        return f"{self.kind}:{self.subject}"


ADMIN_TOKEN = Principal("admin", "admin-token")
