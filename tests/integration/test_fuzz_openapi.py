"""schemathesis against a real `couponapi serve`: every phase, every check.

Its command line runs the examples, coverage, fuzzing and stateful phases with `--checks all`
against a server on a database of its own: no 5xx, every answer as the document declares it
(status, content type, headers, body), every request the document admits accepted, every
request it forbids refused, every 405 with the right `Allow`. A failure fails this test unless
it is one of ACCEPTED: a rule JSON Schema cannot express, listed with the answer that proves
it is that rule and nothing else. Bounded: MAX_EXAMPLES cases an operation, a fixed seed.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.helpers import record
from tests.support import running_server

MAX_EXAMPLES = 20
ADMIN_TOKEN = "fuzz-admin-token-0123456789"
# Starts a load run inside the server (the dashboard's race): not something to fire 50 times.
SKIPPED = "/dashboard/race"
# (operation, check code, text of the answer): refusals of valid-looking requests that depend
# on two fields at once or on what an earlier request did, which no JSON Schema can say.
ACCEPTED = [
    ("POST /api/v2/coupons", "ST202", "ends_at must be after starts_at"),
    ("PATCH /api/v2/coupons/{coupon_id}", "ST202", "ends_at must be after starts_at"),
    ("PATCH /api/v2/coupons/{coupon_id}", "ST202", "/problems/hold-would-shorten"),
    ("POST /api/v2/coupons/{coupon_id}/claims", "ST202", "/problems/idempotency-key-reused"),
    # Whether a URL can be delivered to: its host allowed by the operator's setting (here only
    # this machine), its port a real one.
    ("POST /api/v2/webhooks", "ST202", "/problems/invalid-webhook"),
    # A cursor of the right shape naming a transaction that has not happened yet.
    ("GET /api/v2/events", "ST202", "cursor is ahead of the feed"),
    # An invalid body that is also over the body cap is refused for its size (413, documented)
    # before it is parsed; the negative-data check knows no 413.
    ("Stateful tests", "ST201", "/problems/body-too-large"),
]


@pytest.fixture(scope="module")
def fuzz_server(module_database_url: str) -> Iterator[str]:
    """A server (one worker) on a fresh database for the whole module."""
    env = {"COUPONAPI_ADMIN_TOKEN": ADMIN_TOKEN}
    with running_server(module_database_url, workers=1, env=env) as server:
        yield server.base_url


def failures_in(report: Path) -> tuple[int, list[tuple[str, str, str]]]:
    """The operations tested and the (operation, check code, text) of each failure."""
    suite = ET.parse(report).getroot()  # noqa: S314 (the report schemathesis just wrote)
    failures = [
        (case.attrib["name"], failure.attrib["message"], failure.text or "")
        for case in suite.iter("testcase")
        for failure in case.iter("failure")
    ]
    return len(list(suite.iter("testcase"))), failures


def is_accepted(failure: tuple[str, str, str]) -> bool:
    operation, code, text = failure
    # One finding per failure block: a block that also holds another check's finding is not.
    findings = text.count("\n- ST")
    return findings == 1 and any(
        operation == known and code == check and answer in text for known, check, answer in ACCEPTED
    )


def test_every_route_answers_as_documented(fuzz_server: str, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{fuzz_server}/openapi.json",
        "--phases", "examples,coverage,fuzzing,stateful", "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--no-color",
        "--header", f"Authorization: Bearer {ADMIN_TOKEN}", "--exclude-path", SKIPPED,
        "--request-timeout", "10", "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    reports = list(tmp_path.glob("junit-*.xml"))
    assert reports, run.stdout[-3000:] + run.stderr[-3000:]
    operations, failures = failures_in(reports[0])
    unexpected = [failure for failure in failures if not is_accepted(failure)]
    assert operations >= 20, run.stdout[-3000:]
    assert not unexpected, "\n\n".join(f"{op} {code}:\n{text}" for op, code, text in unexpected)
    record(
        "openapi_fuzzing",
        {"operations": operations, "accepted_rule_refusals": len(failures), "unexpected": 0},
    )
