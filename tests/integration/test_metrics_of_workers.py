"""/metrics adds up every worker of `serve`, whichever worker answers it."""

from __future__ import annotations

import re

import httpx

from tests.support import running_server

REQUESTS = 40
SAMPLE = re.compile(
    r'^couponapi_http_request_duration_seconds_count\{method="GET",route="/healthz",'
    r'status="200"\} (\S+)$',
    re.MULTILINE,
)


def test_metrics_sum_every_worker(module_database_url: str) -> None:
    with running_server(module_database_url, workers=2) as server, httpx.Client() as http:
        for _ in range(REQUESTS):  # a new connection each: the kernel spreads them over workers
            assert (
                http.get(f"{server.base_url}/healthz", headers={"Connection": "close"}).status_code
                == 200
            )
        counts = set()
        for _ in range(6):
            text = http.get(f"{server.base_url}/metrics", headers={"Connection": "close"}).text
            found = SAMPLE.search(text)
            assert found is not None, text[:2000]
            counts.add(float(found.group(1)))
    assert counts == {REQUESTS}
