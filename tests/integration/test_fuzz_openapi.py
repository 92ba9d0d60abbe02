"""Property-based fuzzing of every route from the OpenAPI document (schemathesis).

Each operation gets generated requests, valid and invalid, sent to a real `couponapi serve`
on a database of its own: no answer may be a 5xx, and every answer must match what the
document declares for it (status, content type, body schema). Bounded: MAX_EXAMPLES a route.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.faults.helpers import record
from tests.support import running_server

MAX_EXAMPLES = 20
ADMIN_TOKEN = "fuzz-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Starts a load run inside the server (the dashboard's race): not something to fire 50 times.
SKIPPED = {"POST /dashboard/race"}
SENT = {mode.value: 0 for mode in GenerationMode}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_server(module_database_url: str) -> Iterator[str]:
    """A server (one worker) on a fresh database for the whole module."""
    env = {"COUPONAPI_ADMIN_TOKEN": ADMIN_TOKEN}
    with running_server(module_database_url, workers=1, env=env) as server:
        yield server.base_url


def fuzz(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> list[str]:
    """Send MAX_EXAMPLES generated requests to one operation; the failures, as text."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: schemathesis.Case[Any]) -> None:
        SENT[mode.value] += 1
        case.call_and_validate(headers=ADMIN, checks=CHECKS, timeout=10)

    try:
        run()
    except Unsatisfiable:
        # Nothing invalid to send (no parameters, no body): only the positive mode applies.
        assert mode is GenerationMode.NEGATIVE, operation.label
    except (Exception, BaseExceptionGroup) as error:  # one shrunk failure per operation and mode
        failures.append(f"{operation.label} [{mode.value}]: {error}"[:3000])
    return failures


def test_every_route_answers_as_documented(fuzz_server: str) -> None:
    api = schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        if operation.label in SKIPPED:
            continue
        operations += 1
        for mode in GenerationMode:
            failures += fuzz(operation, mode)
    assert operations >= 10
    assert not failures, "\n\n".join(failures[:10])
    record(
        "openapi_fuzzing",
        {"operations": operations, "requests_sent": dict(SENT), "5xx_or_undocumented": 0},
    )
