"""The dashboard in a real headless browser: Debian's chromium, driven by Playwright.

The page loads, shows a coupon this test created, and its remaining count drops after
claims are made; then its race button runs a small race and the table fills. Skips (saying
why) only when Playwright or chromium cannot be had: `scripts/bootstrap-venv` installs both
on a fresh machine. Set COUPONAPI_SCREENSHOT=path.png to keep a screenshot of the page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.support import running_server
from tests.v2_support import TOKEN

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
V1 = "/coupon/api/v1"


def chromium() -> str:
    """Debian's chromium, or skip the test with the reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium on this machine: run scripts/bootstrap-venv as root to install it")
    return found


def playwright() -> Any:
    """Playwright's sync API, or skip the test with the reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    return sync_playwright


def test_the_page_shows_a_new_coupon_and_its_remaining_count_drops(
    database_url: str, tmp_path: Path
) -> None:
    executable, sync_playwright = chromium(), playwright()
    from playwright.sync_api import expect

    screenshot = Path(os.environ.get("COUPONAPI_SCREENSHOT") or tmp_path / "dashboard.png")
    with (
        # The page shows coupons before the token is typed: its data opened read-only.
        running_server(
            database_url,
            workers=1,
            env={"COUPONAPI_ADMIN_TOKEN": TOKEN, "COUPONAPI_DASHBOARD_PUBLIC": "true"},
        ) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        created = http.post(
            f"{V1}/create", json={"Name": "browser test", "Type": "x", "Amount": 50}
        )
        coupon_id = UUID(created.json()["id"])
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"{server.base_url}/dashboard")
                card = page.locator(f'[data-coupon-id="{coupon_id}"]')
                expect(card.locator("h3")).to_have_text("browser test")
                expect(card.locator(".remaining")).to_have_text("50")
                expect(card.locator(".total")).to_have_text(" / 50 left")
                for user in range(7):
                    given = http.post(
                        f"{V1}/give-transaction/{coupon_id}", headers={"X-User-Id": f"u{user}"}
                    )
                    assert given.status_code == 200
                expect(card.locator(".remaining")).to_have_text("43", timeout=15_000)
                expect(page.locator("#live")).to_have_text("live")
                # The race button: a small race, its table filling in the page.
                page.fill("input[name=quantity]", "10")
                page.fill("input[name=users]", "60")
                page.fill("input[name=concurrency]", "30")
                page.fill("input[name=token]", TOKEN)
                page.click("#race-button")
                expect(page.locator("#race-state")).to_have_text("done", timeout=60_000)
                expect(
                    page.locator("#race-table tr[data-strategy=locking] td").nth(1)
                ).to_have_text("10 / 10")
                naive = page.locator("#race-table tr[data-strategy=naive]")
                expect(naive).to_have_class("oversold")
                page.screenshot(path=str(screenshot), full_page=True)
                assert errors == []
            finally:
                browser.close()
    assert screenshot.read_bytes().startswith(b"\x89PNG")
