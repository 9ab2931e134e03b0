"""A real Chromium (Debian's, at /usr/bin/chromium) driven by Playwright, against relay
served on a loopback port; every test here skips when that browser is not installed.

`shoot(page, name)` saves the page as docs/ui/<name>.png (1280 px wide) and
docs/ui/<name>-375.png (a 375 px phone), the pictures docs/ui.md shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "ui"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

NO_BROWSER = "no browser: /usr/bin/chromium is missing (apt-get install -y chromium)"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(NO_BROWSER)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 800}
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.screenshot(path=str(SHOTS / f"{name}-375.png"), full_page=True)
    await page.set_viewport_size(size)
