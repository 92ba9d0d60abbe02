"""Who is asking: user tokens (JWT), server and admin keys, the admin token (docs/identity.md).

Framework-free: `Authenticator.authenticate` turns an Authorization header into a Principal or
raises an identity refusal (couponapi.domain.errors); couponapi.api.auth applies it to requests.
"""
