"""The OpenAPI document declares what the routes read: query parameters and the admin scheme."""

from __future__ import annotations

import httpx


async def test_admin_routes_declare_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "adminToken": {"type": "http", "scheme": "bearer"},
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    }
    secured = {
        (method, path)
        for path, operations in document["paths"].items()
        for method, spec in operations.items()
        if spec.get("security") == [{"adminToken": []}]
    }
    assert secured == {
        ("post", "/api/v2/coupons"),
        ("patch", "/api/v2/coupons/{coupon_id}"),
        ("get", "/api/v2/coupons/{coupon_id}/claims"),
        ("post", "/dashboard/race"),
        # Identity: the keys, and the dashboard's data unless COUPONAPI_DASHBOARD_PUBLIC.
        ("post", "/api/v2/keys"),
        ("get", "/api/v2/keys"),
        ("delete", "/api/v2/keys/{name}"),
        ("get", "/dashboard/stats"),
        ("get", "/dashboard/race"),
        # Webhooks: every route.
        ("post", "/api/v2/webhooks"),
        ("get", "/api/v2/webhooks"),
        ("get", "/api/v2/webhooks/{webhook_id}"),
        ("patch", "/api/v2/webhooks/{webhook_id}"),
        ("delete", "/api/v2/webhooks/{webhook_id}"),
        ("post", "/api/v2/webhooks/{webhook_id}/rotate-secret"),
        ("get", "/api/v2/webhooks/{webhook_id}/deliveries"),
    }


async def test_query_parameters_are_declared(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    def query(path: str, method: str) -> dict[str, dict[str, object]]:
        parameters = paths[path][method]["parameters"]
        return {p["name"]: p["schema"] for p in parameters if p["in"] == "query"}

    assert query("/api/v2/coupons", "get") == {
        "limit": {"type": "integer", "minimum": 1, "maximum": 200},
        # Every cursor the pattern admits is one the server reads (no 422 for a valid one).
        "cursor": {"type": "string", "pattern": "^$|^[0-9]{1,16}-[0-9a-f]{32}$"},
    }
    assert set(query("/api/v2/users/{user_id}/claims", "get")) == {"limit", "cursor"}
    strategy = query("/api/v2/coupons/{coupon_id}/claims", "post")["strategy"]
    assert "function" in strategy["enum"]  # type: ignore[operator]
