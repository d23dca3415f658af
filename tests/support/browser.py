"""Debian's chromium driven by Playwright, for the page tests: a tab, a step of the seed, a screenshot.

The pictures are the docs' screenshots: tests write them under their tmp_path, and into docs/ only when
asked (``FLOW_VIEWER_SCREENSHOTS=docs``), so that a test run leaves the work tree as it found it. A test
module importing this one (``Page`` and ``expect`` too) is skipped where Playwright or the browser is
missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "Page", "chromium_tab", "expect", "keep_screenshot", "run_step"]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS_TO = os.environ.get("FLOW_VIEWER_SCREENSHOTS")

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:
    pytest.skip("Playwright for Python is not installed: pip install playwright", allow_module_level=True)
if not CHROMIUM.exists():
    pytest.skip(f"no browser at {CHROMIUM}: apt-get install -y chromium", allow_module_level=True)


@contextmanager
def chromium_tab(width: int = 1400, height: int = 900) -> Iterator[Page]:
    """A fresh chromium tab at that viewport, nothing loaded yet; expect() waits up to 10 s."""
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(10_000)
            yield page
        finally:
            browser.close()


def keep_screenshot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page PNG under tmp_path; copied into FLOW_VIEWER_SCREENSHOTS when that is set."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if SCREENSHOTS_TO:
        shutil.copyfile(shot, Path(SCREENSHOTS_TO) / name)


def run_step(page: Page, step: str, shows: str) -> None:
    """Click a step of the seed and wait until its result line shows ``shows``."""
    item = page.locator(f'#steps li[data-step="{step}"]')
    item.get_by_role("button").click()
    expect(item.locator(".result")).to_contain_text(shows)
