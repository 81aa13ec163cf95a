"""The browser every end-to-end test drives: one headless Chromium per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import require_service
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, chromium_available


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    available, reason = chromium_available()
    require_service(available, reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
