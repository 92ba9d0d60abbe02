"""Bad input and attacks on identity, from the attacker's side: each answered 401 or 403 with
problem+json, and the database compared before and after (nothing written)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.identity.world import books, make_key, world
from tests.v2_support import ADMIN, JWT_SECRET, V2, create_coupon, user_token, v2_client


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_made(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWT as an attacker builds it: any header, signed HS256 with `key` (None: unsigned)."""
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(signature)}"


NOW = int(time.time())
LATER = NOW + 6 * 3600  # valid however long the suite runs before this test
ATTACKS: dict[str, tuple[str, int]] = {
    "forged signature": (user_token("alice", secret="another-secret-" + "x" * 32), 403),
    "alg none": (
        hand_made({"alg": "none", "typ": "JWT"}, {"sub": "alice", "exp": LATER}, None),
        403,
    ),
    "expired": (user_token("alice", ttl=-120), 403),
    "not yet valid": (user_token("alice", nbf=NOW + 86_400), 403),
    "issued in the future": (user_token("alice", iat=NOW + 86_400), 403),
    "no exp": (hand_made({"alg": "HS256"}, {"sub": "alice"}, JWT_SECRET.encode()), 403),
    "no sub": (hand_made({"alg": "HS256"}, {"exp": LATER}, JWT_SECRET.encode()), 403),
    "sub too long": (user_token("a" * 129), 403),
    "sub with a control character": (user_token("ali\x00ce"), 403),
    "sub with a newline": (user_token("alice\n"), 403),
    "sub not a string": (
        hand_made({"alg": "HS256"}, {"sub": 7, "exp": LATER}, JWT_SECRET.encode()),
        403,
    ),
    "bare Bearer": ("", 401),
    "Bearer and spaces": ("  ", 401),
    "a non-JWT string": ("not-a-token-at-all", 403),
    "three dots of garbage": ("a.b.c", 403),
    "10 KB of text": ("x" * 10_240, 403),
    "an unknown key": ("cpk_0123456789ab_" + "A" * 43, 403),
}


@pytest.mark.parametrize(("token", "status"), ATTACKS.values(), ids=ATTACKS.keys())
async def test_a_bad_user_token_claims_nothing(
    database_url: str, pool: asyncpg.Pool, token: str, status: int
) -> None:
    async with world(database_url) as w:
        before = await books(pool)
        url = f"{V2}/coupons/{w.coupon_id}/claims"
        header = {"Authorization": f"Bearer {token}"}
        answers = [
            await w.client.post(url, headers=header),
            await w.client.post(url, json={"user_id": "alice"}, headers=header),
            await w.client.get(f"{V2}/me/claims", headers=header),
            await w.client.post(f"{V2}/claims/{w.claims['alice']['id']}/release", headers=header),
        ]
        after = await books(pool)
    for answer in answers:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert ("www-authenticate" in answer.headers) == (status == 401)
        assert token not in answer.text or not token.strip()  # never echoed
    assert after == before


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer  ", "Basic YWxpY2U6cHc=", "bearer", "Token abc"]
)
async def test_a_garbled_authorization_header_is_401(
    database_url: str, pool: asyncpg.Pool, authorization: str
) -> None:
    async with world(database_url) as w:
        before = await books(pool)
        answer = await w.client.post(
            f"{V2}/coupons/{w.coupon_id}/claims", headers={"Authorization": authorization}
        )
        assert await books(pool) == before
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="couponapi"'
    assert answer.json()["type"] == "/problems/unauthorized"


@pytest.fixture
def es256(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    """A P-256 key pair; the public half in a PEM file, as COUPONAPI_JWT_PUBLIC_KEY names it."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "jwt.pem"
    path.write_bytes(pem)
    return private, path


def es256_token(private: ec.EllipticCurvePrivateKey, **claims: Any) -> str:
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.encode({"alg": "ES256"}, {"exp": LATER, **claims}, ECKey.import_key(pem))


async def test_hs256_signed_with_the_public_key_text_is_refused(
    database_url: str, pool: asyncpg.Pool, es256: tuple[ec.EllipticCurvePrivateKey, Path]
) -> None:
    private, pem_file = es256
    confused = hand_made({"alg": "HS256"}, {"sub": "alice", "exp": LATER}, pem_file.read_bytes())
    async with world(database_url, jwt_secret=None, jwt_public_key=pem_file) as w:
        url = f"{V2}/coupons/{w.coupon_id}/claims"
        before = await books(pool)
        refused = await w.client.post(url, headers={"Authorization": f"Bearer {confused}"})
        hs256 = await w.client.post(url, headers={"Authorization": f"Bearer {user_token('a')}"})
        assert await books(pool) == before
        good = await w.client.post(
            url, headers={"Authorization": f"Bearer {es256_token(private, sub='alice')}"}
        )
    assert (refused.status_code, hs256.status_code) == (403, 403)
    assert good.status_code == 201
    assert good.json()["user_id"] == "alice"


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"sub": "alice", "iss": "https://shop.example", "aud": "coupons"}, 201),
        ({"sub": "alice", "iss": "https://evil.example", "aud": "coupons"}, 403),
        ({"sub": "alice", "iss": "https://shop.example", "aud": "other"}, 403),
        ({"sub": "alice", "aud": "coupons"}, 403),
        ({"sub": "alice", "iss": "https://shop.example"}, 403),
    ],
    ids=["both right", "wrong issuer", "wrong audience", "no issuer", "no audience"],
)
async def test_issuer_and_audience_are_checked_when_configured(
    database_url: str, pool: asyncpg.Pool, claims: dict[str, str], status: int
) -> None:
    checks = {"jwt_issuer": "https://shop.example", "jwt_audience": "coupons"}
    async with world(database_url, **checks) as w:
        before = await books(pool)
        sub = claims.pop("sub")
        token = user_token(sub, 600, JWT_SECRET, **claims)
        answer = await w.client.post(
            f"{V2}/coupons/{w.coupon_id}/claims", headers={"Authorization": f"Bearer {token}"}
        )
        if status != 201:
            assert await books(pool) == before
    assert answer.status_code == status, answer.text


async def test_a_revoked_key_is_refused_within_a_second_on_every_worker(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Two apps on one database stand for two workers: revoked through one, the other
    refuses the key within a second."""
    async with v2_client(database_url) as first, v2_client(database_url) as second:
        coupon_id = await create_coupon(first)
        key = {"Authorization": f"Bearer {await make_key(first, 'checkout', 'server')}"}
        url = f"{V2}/coupons/{coupon_id}/claims"
        assert (await second.post(url, json={"user_id": "u1"}, headers=key)).status_code == 201
        revoked = await first.delete(f"{V2}/keys/checkout", headers=ADMIN)
        assert revoked.status_code == 200
        at = time.monotonic()
        before = await books(pool)
        statuses = []
        while time.monotonic() - at < 1.0:
            statuses.append((await second.get(f"{V2}/users/u1/claims", headers=key)).status_code)
            await asyncio.sleep(0.05)
        after_a_second = await second.post(url, json={"user_id": "u2"}, headers=key)
        here = await first.post(url, json={"user_id": "u3"}, headers=key)
        assert await books(pool) == before
    assert statuses[-1] == 403  # refused before the second was out
    assert (after_a_second.status_code, here.status_code) == (403, 403)
    assert after_a_second.json()["type"] == "/problems/forbidden"


async def test_a_server_key_on_admin_routes_is_403(database_url: str, pool: asyncpg.Pool) -> None:
    async with world(database_url) as w:
        before = await books(pool)
        server = w.headers["server"]
        answers = [
            await w.client.post(f"{V2}/coupons", json={"name": "n", "type": "t", "quantity": 9},
                                headers=server),
            await w.client.post(f"{V2}/keys", json={"name": "mine", "scope": "admin"},
                                headers=server),
            await w.client.delete(f"{V2}/keys/ops", headers=server),
            await w.client.patch(f"{V2}/coupons/{w.coupon_id}", json={"quantity": 99},
                                 headers=server),
        ]  # fmt: skip
        assert await books(pool) == before
    assert [a.status_code for a in answers] == [403] * 4
    assert {a.json()["type"] for a in answers} == {"/problems/not-permitted"}


async def test_alice_cannot_act_as_bob(database_url: str, pool: asyncpg.Pool) -> None:
    async with world(database_url) as w:
        alice = w.headers["user"]
        before = await books(pool)
        answers = [
            await w.client.post(f"{V2}/coupons/{w.coupon_id}/claims", json={"user_id": "bob"},
                                headers=alice),
            await w.client.get(f"{V2}/users/bob/claims", headers=alice),
            await w.client.post(f"{V2}/claims/{w.claims['bob']['id']}/release", headers=alice),
            await w.client.post(f"{V2}/claims/redeem", json={"code": w.claims["bob"]["code"]},
                                headers=alice),
        ]  # fmt: skip
        assert await books(pool) == before
    assert [a.status_code for a in answers] == [403] * 4
    assert all(w.claims["bob"]["code"] not in a.text for a in answers)


async def test_the_bodys_user_must_be_the_tokens(database_url: str, pool: asyncpg.Pool) -> None:
    async with world(database_url) as w:
        url = f"{V2}/coupons/{w.coupon_id}/claims"
        same = await w.client.post(url, json={"user_id": "alice"}, headers=w.headers["user"])
        other = await w.client.post(url, json={"user_id": "Alice"}, headers=w.headers["user"])
    assert (same.status_code, other.status_code) == (201, 403)
    assert other.json()["detail"] == "a user token acts for its own user only (user_id is not sub)"


async def test_no_token_of_any_kind_on_a_server_without_user_tokens(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with v2_client(database_url, jwt_secret=None) as client:
        coupon_id = await create_coupon(client)
        answer = await client.post(
            f"{V2}/coupons/{coupon_id}/claims",
            headers={"Authorization": f"Bearer {user_token('alice')}"},
        )
    assert answer.status_code == 403
    assert answer.json()["detail"] == "user tokens are not configured on this server"
    assert await pool.fetchval("SELECT count(*) FROM claim") == 0


def test_public_key_types_choose_their_one_algorithm(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from couponapi.identity.tokens import public_key_algorithm

    public = serialization.PublicFormat.SubjectPublicKeyInfo
    keys: dict[str, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey] = {
        "RS256": rsa.generate_private_key(65537, 2048).public_key(),
        "ES256": ec.generate_private_key(ec.SECP256R1()).public_key(),
        "EdDSA": ed25519.Ed25519PrivateKey.generate().public_key(),
    }
    for algorithm, key in keys.items():
        pem = key.public_bytes(serialization.Encoding.PEM, public)
        assert public_key_algorithm(pem)[1] == algorithm
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ValueError, match="P-256"):
        public_key_algorithm(p384.public_bytes(serialization.Encoding.PEM, public))


async def test_a_claim_needs_a_credential(database_url: str, pool: asyncpg.Pool) -> None:
    async with v2_client(database_url) as client:
        coupon_id = await create_coupon(client)
        answer = await client.post(f"{V2}/coupons/{coupon_id}/claims", json={"user_id": "alice"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="couponapi"'
    assert await pool.fetchval("SELECT count(*) FROM claim") == 0
