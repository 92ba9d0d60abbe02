"""The concurrency suite and the stuck-database tests again, with the service reaching
PostgreSQL through Debian's PgBouncer in transaction mode (tests/pgbouncer).

They run in a pytest of their own (COUPONAPI_TEST_POOLER=pgbouncer switches the fixtures,
tests/conftest) and must all pass there, none skipped: the same exact outcomes, no oversell,
the per-user limit, one grant per idempotency key, and a claim behind a stuck lock still
answered 503 after lock_timeout (the role's timeouts reach PgBouncer's server sessions,
where the start-up packet's would have been refused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests import pgbouncer

pytestmark = pytest.mark.concurrency

SUITES = ["tests/concurrency", "tests/faults/test_stuck_database.py"]


def test_concurrency_and_stuck_lock_suites_pass_through_pgbouncer(tmp_path: Path) -> None:
    if os.environ.get("COUPONAPI_TEST_POOLER"):
        pytest.skip("already running through the pooler (this test starts that run)")
    if pgbouncer.binary() is None:
        pytest.skip(
            "Debian's pgbouncer is not installed (make test installs it when root: "
            "scripts/ensure-pgbouncer); the suites were not run through a pooler"
        )
    junit, report = tmp_path / "junit.xml", tmp_path / "pooler.json"
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider",
            "--deselect", "tests/concurrency/test_through_pgbouncer.py",
            f"--junitxml={junit}",
        ],
        cwd=root,
        env={
            **os.environ,
            "COUPONAPI_TEST_POOLER": "pgbouncer",
            "COUPONAPI_TEST_POOLER_REPORT": str(report),
        },
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    suite = ElementTree.parse(junit).getroot().find("testsuite")  # noqa: S314 (ours)
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["tests"] >= 20, counts  # the suites were collected, not an empty run
    assert (counts["failures"], counts["errors"], counts["skipped"]) == (0, 0, 0), counts
    pooled = json.loads(report.read_text())
    assert pooled["logins"] > 0, "nothing went through PgBouncer"
    assert pooled["refused_parameters"] == 0
    print(f"\nthrough {pooled['version']}: {counts['tests']} passed, {pooled['logins']} logins")
