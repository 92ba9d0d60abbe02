"""From an Authorization header to a Principal: the admin token, an API key or a user token.

`Bearer <credential>` only. No header, another scheme or an empty credential: Unauthenticated
(401). The admin token is compared first; then a credential is told apart by its shape:
`cpk_...` is an API key (the key ring), three dot-separated parts a JWT (the token verifier).
What does not verify is CredentialNotValid (403). Nothing here touches the database except a
key ring reload (couponapi.identity.keyring).
"""

from __future__ import annotations

import hmac
import re

from couponapi.config import Settings
from couponapi.domain.errors import CredentialNotValid, Unauthenticated
from couponapi.identity.keyring import KeyRing
from couponapi.identity.keys import PREFIX
from couponapi.identity.principal import ADMIN_TOKEN, Principal
from couponapi.identity.tokens import MAX_TOKEN_CHARS, TokenVerifier

MISSING = "a bearer credential is required (a user token, a server key or the admin token)"


def verifier_of(settings: Settings) -> TokenVerifier | None:
    """The user-token verifier `settings` configure, None when user tokens are off."""
    checks = {
        "issuer": settings.jwt_issuer,
        "audience": settings.jwt_audience,
        "leeway": settings.jwt_leeway_s,
    }
    if settings.jwt_secret is not None:
        return TokenVerifier.hs256(settings.jwt_secret.get_secret_value(), **checks)
    if settings.jwt_public_key is not None:
        return TokenVerifier.public(settings.jwt_public_key, **checks)
    return None


# Whitespace inside a credential (one regex search: a generator over a token's 150+
# characters cost a third of verifying it).
_WHITESPACE = re.compile(r"\s")


class Authenticator:
    """Checks credentials against the admin token, the key ring and the token verifier."""

    def __init__(
        self, admin_token: str | None, keyring: KeyRing | None, verifier: TokenVerifier | None
    ) -> None:
        self._admin = admin_token.encode() if admin_token else None
        self._keyring = keyring
        self._verifier = verifier

    async def authenticate(self, authorization: str | None, missing: str = MISSING) -> Principal:
        """The principal `authorization` proves; Unauthenticated or CredentialNotValid."""
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated(missing)
        if len(credential) > MAX_TOKEN_CHARS or _WHITESPACE.search(credential):
            raise CredentialNotValid("the credential is not valid")
        # First, so an admin token of any shape works; compared in constant time.
        if self._admin is not None and hmac.compare_digest(credential.encode(), self._admin):
            return ADMIN_TOKEN
        if credential.startswith(PREFIX):
            live = await self._keyring.find(credential) if self._keyring else None
            if live is None:
                raise CredentialNotValid("the key is not valid (unknown or revoked)")
            return Principal(live.scope, live.name)
        if credential.count(".") == 2:
            if self._verifier is None:
                raise CredentialNotValid("user tokens are not configured on this server")
            return Principal("user", self._verifier.subject(credential))
        raise CredentialNotValid("the credential is not valid")
