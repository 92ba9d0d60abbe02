"""`python -m benchmarks.jwt_decode`: what verifying one user token costs, by library.

20,000 distinct tokens decoded and checked (signature, exp, sub) on one core, as the claim
path does it: joserfc (what couponapi.identity.tokens uses, with its sub check) and PyJWT (the
`bench` extra), for HS256 and ES256. Measured here, one core pinned: joserfc 1.8 30-34 us
HS256, 131-144 us ES256; PyJWT 2.15 43-57 us HS256, 125-141 us ES256. joserfc was chosen for
HS256, the flash-sale case; ES256 costs the same with either (the curve dominates).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from couponapi.identity.tokens import TokenVerifier, mint

N = 20_000
SECRET = "benchmark-secret-" + "0" * 32


def per_decode_us(decode: Callable[[str], object], tokens: list[str]) -> float:
    """CPU microseconds per decode, the best of three passes."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for token in tokens:
            decode(token)
        best = min(best, time.process_time() - started)
    return best / len(tokens) * 1e6


def main() -> None:
    from joserfc import jwt
    from joserfc.jwk import ECKey

    hs256 = [mint(SECRET, f"user-{n}") for n in range(N)]
    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    exp = int(time.time()) + 3_600
    signer = ECKey.import_key(private_pem)
    es256 = [jwt.encode({"alg": "ES256"}, {"sub": f"u{n}", "exp": exp}, signer) for n in range(N)]
    ours = TokenVerifier.hs256(SECRET)
    print(f"joserfc HS256: {per_decode_us(ours.subject, hs256):6.1f} us")
    es_key, algorithm = ECKey.import_key(public_pem), "ES256"
    ours_es = TokenVerifier(es_key, algorithm)
    print(f"joserfc ES256: {per_decode_us(ours_es.subject, es256):6.1f} us")
    try:
        import jwt as pyjwt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("PyJWT is not installed (pip install -e '.[bench]'): its figures skipped")
        return
    options: Any = {"require": ["exp", "sub"]}

    def pyjwt_hs(token: str) -> object:
        return pyjwt.decode(token, SECRET, algorithms=["HS256"], options=options, leeway=30)

    def pyjwt_es(token: str) -> object:
        return pyjwt.decode(token, public_pem, algorithms=["ES256"], options=options)

    print(f"PyJWT   HS256: {per_decode_us(pyjwt_hs, hs256):6.1f} us")
    print(f"PyJWT   ES256: {per_decode_us(pyjwt_es, es256):6.1f} us")


if __name__ == "__main__":
    main()
