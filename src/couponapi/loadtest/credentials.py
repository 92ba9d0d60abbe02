"""What a load run proves itself with: the admin token (to create and read coupons), and the
HS256 secret it mints one user token per crowd member with, so a run claims the way real
users do and measures the real path (docs/identity.md).

Each comes from its option, else the environment (COUPONAPI_ADMIN_TOKEN, COUPONAPI_JWT_SECRET),
else the file `serve` keeps in the data directory. Without a secret the crowd claims with the
admin token and names its users in the body (a server's way); without either, v2 refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from couponapi.admin_token import JWT_SECRET_FILE, TOKEN_FILE, kept_token
from couponapi.config import Settings
from couponapi.identity.tokens import mint

TOKEN_TTL_S = 3_600  # a run's tokens outlive the run


@dataclass(frozen=True, slots=True)
class Credentials:
    """The admin credential and the user-token secret a run uses (either may be missing)."""

    admin: str | None = None
    jwt_secret: str | None = None

    @classmethod
    def found(cls, admin: str | None = None, jwt_secret: str | None = None) -> Credentials:
        """The given ones, else the environment's, else the data directory's."""
        settings = Settings()
        if admin is None and settings.admin_token is not None:
            admin = settings.admin_token.get_secret_value()
        if jwt_secret is None and settings.jwt_secret is not None:
            jwt_secret = settings.jwt_secret.get_secret_value()
        return cls(
            admin=admin or kept_token(settings.data_dir, TOKEN_FILE),
            jwt_secret=jwt_secret or kept_token(settings.data_dir, JWT_SECRET_FILE),
        )

    def admin_headers(self) -> dict[str, str]:
        """Authorization for admin calls ({} without an admin credential)."""
        return {"Authorization": f"Bearer {self.admin}"} if self.admin else {}

    def user_headers(self, user: str) -> dict[str, str] | None:
        """Authorization as `user` with a token minted for it; None without a secret."""
        if self.jwt_secret is None:
            return None
        return {"Authorization": f"Bearer {mint(self.jwt_secret, user, TOKEN_TTL_S)}"}


NO_CREDENTIALS = Credentials()  # a run that proves nothing: v1 routes and open reads only
