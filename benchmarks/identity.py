"""The v2 hot claim with identity on its path, beside the same claim without it.

Four ways to claim the same hot coupon (HOT_100, the default v2 strategy), each served by its
own server process and taken in turn IDENTITY_ROUNDS times, so the ratios are not skewed by
the machine's pace changing: no credential (benchmarks.open_app: the service with
authentication taken out, the claim of before identity), a user token per request signed
HS256, the same signed ES256 (the server holds only the public key), and a server key naming
the user in the body. Load runs mint one token per crowd member: every request is a new user
with a token never seen before, so no cache helps. Goal: HS256 at >= 0.85x of
the unauthenticated figure; ES256 reported.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from benchmarks.scenarios import HOT_100, V2_GROUP_COMMIT, Scenario, Target
from benchmarks.service import BENCH_JWT_SECRET
from couponapi.identity.tokens import mint
from couponapi.services.keys import create_key

TOKENS_PER_SECOND = 8_000  # more than a run answers here: each token is used once
TOKEN_TTL_S = 3_600
IDENTITY_ROUNDS = 3
SCENARIO: Scenario = HOT_100


@dataclass(frozen=True)
class Way:
    """One way in: the server program and its settings, and what each request carries."""

    name: str
    program: str
    settings: dict[str, str]
    kind: str  # claim.lua kind: v2 | v2token | v2key
    credentials: Path | None = None


def _key_pair(folder: Path) -> tuple[ECKey, Path]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = folder / "jwt-es256.pem"
    public.write_bytes(pem)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ECKey.import_key(private_pem), public


def _tokens(path: Path, count: int, sign: Callable[[str], str]) -> Path:
    with path.open("w") as out:
        for n in range(count):
            out.write(sign(f"bench-{path.stem}-{n}") + "\n")
    return path


async def _server_key(url: str) -> str:
    async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
        _, key = await create_key(pool, f"bench-{id(pool):x}"[:40], "server")
    return key


def ways(url: str, folder: Path, seconds: float) -> list[Way]:
    """The four ways, their credentials files made in `folder` (tokens for `seconds`)."""
    count = int(TOKENS_PER_SECOND * seconds)
    signer, public = _key_pair(folder)

    def es256(user: str) -> str:
        now = int(time.time())
        claims = {"sub": user, "iat": now, "exp": now + TOKEN_TTL_S}
        return jwt.encode({"alg": "ES256"}, claims, signer)

    key_file = folder / "server-key.txt"
    key_file.write_text(asyncio.run(_server_key(url)) + "\n")
    es = {"COUPONAPI_JWT_SECRET": "", "COUPONAPI_JWT_PUBLIC_KEY": str(public)}
    return [
        Way("no credential (before identity)", "benchmarks.open_app", {}, "v2"),
        Way("user token HS256", "couponapi serve", {}, "v2token",
            hs256_tokens(folder / "hs256.txt", seconds)),
        Way("user token ES256", "couponapi serve", es, "v2token",
            _tokens(folder / "es256.txt", count, es256)),
        Way("server key", "couponapi serve", {}, "v2key", key_file),
    ]  # fmt: skip


def hs256_tokens(path: Path, seconds: float) -> Path:
    """A file of HS256 user tokens (BENCH_JWT_SECRET) for a run of `seconds`, one per user."""
    count = int(TOKENS_PER_SECOND * seconds)
    return _tokens(path, count, lambda user: mint(BENCH_JWT_SECRET, user, TOKEN_TTL_S))


def target(way: Way) -> Target:
    """The hot v2 claim as `way` makes it."""
    base = V2_GROUP_COMMIT
    return Target(f"v2 {base.strategy}, {way.name}", "v2", base.strategy, base.path, way.kind)


def credentials_folder() -> Path:
    """Where a run's tokens and keys are written (removed with the run's temporary files)."""
    return Path(tempfile.mkdtemp(prefix="couponapi-bench-identity-"))


def ratios(records: list[dict[str, Any]]) -> dict[str, float]:
    """Each way's median ok/s over the rounds, as a fraction of the unauthenticated one."""
    by_way: dict[str, list[float]] = {}
    for record in records:
        by_way.setdefault(record["way"], []).append(record["ok_per_s"])
    medians = {way: sorted(v)[len(v) // 2] for way, v in by_way.items()}
    base = medians.get("no credential (before identity)") or 0.0
    return {way: round(m / base, 3) if base else 0.0 for way, m in medians.items()}
