"""Headless Chromium for the dashboard's end-to-end tests, driven by Playwright for Python.

Playwright cannot download its own browsers here, so it drives Debian's `chromium` through
`executable_path`; the flags keep it from reaching out to the network (closed here) and from
needing a sandbox or a GPU.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("OSCAR_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def chromium_available() -> tuple[bool, str]:
    if not Path(CHROMIUM).exists():
        return False, f"no Chromium at {CHROMIUM} (Debian package chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False, "Playwright for Python is not installed (test extra)"
    return True, ""


def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as test-artifacts/ui/<name>.png, for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
