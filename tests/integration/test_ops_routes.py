"""Operations: /healthz, /readyz, /metrics, request ids, JSON logs, security headers, CORS."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from uuid import uuid4

import asyncpg
import httpx
import pytest

from couponapi.config import Settings
from couponapi.logs import JsonFormatter
from tests.support import app_client

V1 = "/coupon/api/v1"


async def coupon(pool: asyncpg.Pool, quantity: int) -> str:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, name, type, quantity) VALUES ($1, 'ops', 'percent', $2)",
        coupon_id,
        quantity,
    )
    return str(coupon_id)


async def test_healthz_and_readyz_when_all_is_well(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "missing_migrations": [], "error": None}


async def test_readyz_is_503_when_a_migration_is_missing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    latest = await pool.fetchval("SELECT max(version) FROM schema_migrations")
    await pool.execute("DELETE FROM schema_migrations WHERE version = $1", latest)
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "1"
    assert ready.json() == {"status": "not_migrated", "missing_migrations": [latest], "error": None}
    assert (await client.get("/healthz")).status_code == 200  # alive all the same


async def test_metrics_count_claims_by_strategy_and_outcome(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    def value(text: str, sample: str) -> float:
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    granted = 'couponapi_claims_total{outcome="granted",strategy="function"}'
    sold_out = 'couponapi_claims_total{outcome="sold_out",strategy="function"}'
    before = (await client.get("/metrics")).text
    coupon_id = await coupon(pool, 2)
    statuses = [
        (await client.post(f"{V1}/give-transaction-pgfunction/{coupon_id}")).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 409]
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert value(after, granted) - value(before, granted) == 2
    assert value(after, sold_out) - value(before, sold_out) == 1
    route = f"{V1}/give-transaction-pgfunction/{{coupon_id}}"
    labels = f'method="POST",route="{route}",status="200"'
    count = f"couponapi_http_request_duration_seconds_count{{{labels}}}"
    assert value(after, count) - value(before, count) == 2
    for name in ("couponapi_pool_connections", "couponapi_batch_size", "couponapi_database_errors"):
        assert f"# TYPE {name}" in after


async def test_request_id_is_taken_from_the_client_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", made.headers["x-request-id"])
    assert (await client.get("/healthz")).headers["x-request-id"] != made.headers["x-request-id"]
    # Not printable ASCII or too long: replaced, so it cannot forge log lines.
    forged = await client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", forged.headers["x-request-id"])


async def test_log_lines_are_json_with_the_request_id(
    settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    coupon_id = await coupon(pool, 1)
    async with app_client(settings.model_copy(update={"access_log": True})) as http:
        with caplog.at_level(logging.INFO, logger="couponapi"):
            response = await http.post(
                f"{V1}/give-transaction/{coupon_id}", headers={"X-Request-ID": "req-42"}
            )
    assert response.status_code == 200
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    access = [line for line in lines if line["logger"] == "couponapi.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == "req-42"
    assert access[0]["message"] == f"POST {V1}/give-transaction/{{coupon_id}} 200"
    assert access[0]["status"] == 200
    assert {"time", "level", "ms"} <= set(access[0])


async def test_security_headers_and_a_csp_that_admits_swagger_ui(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/swagger/index.html")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    # Every inline script of the page is admitted by its hash, and nothing else inline.
    scripts = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert scripts
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    api = await client.get(f"{V1}/all")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in api.headers


async def test_cors_is_closed_by_default_and_opens_for_configured_origins(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    preflight = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
    }
    closed = await client.options(f"{V1}/create", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    simple = await client.get(f"{V1}/all", headers={"Origin": "https://shop.example"})
    assert "access-control-allow-origin" not in simple.headers
    opened = settings.model_copy(update={"cors_origins": "https://shop.example"})
    async with app_client(opened) as http:
        allowed = await http.options(f"{V1}/create", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
        other = await http.options(
            f"{V1}/create", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
