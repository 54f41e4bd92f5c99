"""Debian's headless chromium (`make chromium`), driven by Playwright over CDP.

Playwright only drives it: no browser is downloaded. Each browser gets a
profile directory of its own, removed with it, and is closed (its process
ended) on exit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Where the documentation's pictures are; the tests save theirs there when
# SCREENSHOTS_TO_DOCS=1 (the `screenshots` fixture).
DOCS_IMAGES = Path(__file__).parents[2] / "docs" / "images"
FLAGS = [
    "--headless",
    "--no-sandbox",  # the tests may run as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[BrowserContext]:
    """A headless chromium on a temporary profile (--user-data-dir)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile, sync_playwright() as driver:
        browser = driver.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            yield browser
        finally:
            browser.close()
