"""Headless Chromium for the browser tests: Debian's package, driven by Playwright.

``make chromium`` installs it (not a browser Playwright downloads); the tests
that need it skip with the reason when it or Playwright is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: What works on this kind of machine: no sandbox (root in a container), and none of
#: the browser's background network features, so it reaches nothing but the test's server.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for a test module (import this fixture into it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        yield b
        b.close()
