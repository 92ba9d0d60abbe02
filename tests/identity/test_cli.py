"""`couponapi keys create|list|revoke` and `couponapi token`, run as a user would, against a
real database; the keys they make are then tried on the API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from couponapi.identity.keys import digest_of
from tests.identity.world import books
from tests.v2_support import JWT_SECRET, V2, create_coupon, v2_client


def couponapi(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in {**os.environ, **env}.items() if v}  # "": removed
    return subprocess.run(
        [sys.executable, "-m", "couponapi", *args],
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_keys_create_list_revoke(database_url: str, pool: asyncpg.Pool) -> None:
    made = couponapi("keys", "create", "checkout", "--scope", "server", DATABASE_URL=database_url)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]  # the key is the last line
    assert key.startswith("cpk_")
    stored = await pool.fetchrow("SELECT name, scope, digest FROM api_key")
    assert stored is not None
    assert (stored["name"], stored["scope"]) == ("checkout", "server")
    assert bytes(stored["digest"]) == digest_of(key)
    everything = await pool.fetchval("SELECT string_agg(t::text, ' ') FROM api_key t")
    assert key not in everything
    assert key.split("_", 2)[2] not in everything  # the secret may itself hold "_"
    async with v2_client(database_url) as client:
        coupon_id = await create_coupon(client)
        url = f"{V2}/coupons/{coupon_id}/claims"
        auth = {"Authorization": f"Bearer {key}"}
        assert (await client.post(url, json={"user_id": "u"}, headers=auth)).status_code == 201
        listed = couponapi("keys", "list", DATABASE_URL=database_url)
        assert "checkout" in listed.stdout
        assert key not in listed.stdout
        twice = couponapi(
            "keys", "create", "checkout", "--scope", "admin", DATABASE_URL=database_url
        )
        assert twice.returncode != 0
        assert "revoke it first" in twice.stderr
        revoked = couponapi("keys", "revoke", "checkout", DATABASE_URL=database_url)
        assert revoked.returncode == 0, revoked.stderr
        await asyncio.sleep(1.05)  # revoked elsewhere: refused here within a second
        before = await books(pool)
        refused = await client.post(url, json={"user_id": "v"}, headers=auth)
        assert await books(pool) == before
    assert refused.status_code == 403
    again = couponapi("keys", "revoke", "checkout", DATABASE_URL=database_url)
    assert again.returncode != 0
    assert "no live key" in again.stderr


@pytest.mark.parametrize("bad", [["keys", "create", "bad name", "--scope", "server"],
                                 ["keys", "create", "x", "--scope", "root"]])  # fmt: skip
def test_keys_create_refuses_bad_names_and_scopes(database_url: str, bad: list[str]) -> None:
    assert couponapi(*bad, DATABASE_URL=database_url).returncode != 0


async def test_token_mints_a_user_token_the_server_accepts(
    database_url: str, pool: asyncpg.Pool
) -> None:
    minted = couponapi("token", "alice", "--ttl", "60", COUPONAPI_JWT_SECRET=JWT_SECRET)
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    async with v2_client(database_url) as client:
        coupon_id = await create_coupon(client)
        claimed = await client.post(
            f"{V2}/coupons/{coupon_id}/claims", headers={"Authorization": f"Bearer {token}"}
        )
    assert claimed.status_code == 201
    assert claimed.json()["user_id"] == "alice"


def test_token_uses_the_secret_kept_in_the_data_directory(tmp_path: Path) -> None:
    env = {"COUPONAPI_DATA_DIR": str(tmp_path), "COUPONAPI_JWT_SECRET": ""}
    first = couponapi("token", "bob", **env)
    assert first.returncode == 0, first.stderr
    secret = (tmp_path / "jwt-secret").read_text().strip()
    assert len(secret) >= 32
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600
    from couponapi.identity.tokens import TokenVerifier

    assert TokenVerifier.hs256(secret).subject(first.stdout.strip()) == "bob"
