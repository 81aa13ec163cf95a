"""A service's activity on the dashboard, in headless Chromium against a real `oscar serve`:
throughput and wait and run time percentiles over the last hour, day and week."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.browser import (
    DESKTOP,
    PHONE,
    screenshot,
)
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.docker

IMAGE = "oscar-test/busybox:latest"
SERVICE = "timed"
SCRIPT = """#!/bin/sh
grep -q fail "$INPUT_FILE_PATH" && exit 3
sleep 1
echo done
"""


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, docker_client: object
) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("activity") / "data")
    try:
        running.create_service(
            {"name": SERVICE, "image": IMAGE, "script": SCRIPT, "cpu": "0.1", "memory": "64Mi"}
        )
        with running.client() as client:
            for body in ({"n": 1}, {"n": 2}, {"kind": "fail"}):
                assert client.post(f"/job/{SERVICE}", json=body).status_code == 201
            answer = client.post(f"/run/{SERVICE}", content=base64.b64encode(b"sync"), timeout=60)
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 60
        while _final_jobs(running) < 4:
            assert time.monotonic() < deadline, "the jobs did not finish"
            time.sleep(0.3)
        yield running
    finally:
        running.stop()


def _final_jobs(running: RunningServer) -> int:
    with running.client() as client:
        jobs = client.get(f"/system/logs/{SERVICE}").json()["jobs"].values()
    return sum(job["status"] in ("Succeeded", "Failed") for job in jobs)


def signed_in(browser: Any, platform: RunningServer, viewport: dict[str, int]) -> Any:
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{platform.url}/ui/login")
    page.get_by_label("User").fill(platform.username)
    page.get_by_label("Password").fill(platform.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui$"))
    return page


def test_a_service_shows_its_throughput_and_percentiles(
    platform: RunningServer, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = signed_in(browser, platform, DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{platform.url}/ui/services/{SERVICE}")
    section = page.locator("[data-activity]")
    expect(section.get_by_role("heading", name="Jobs finished, last hour")).to_be_visible()
    # The four jobs end within seconds, in one slot or across the boundary of two.
    expect(section.locator("svg[data-chart=throughput] desc")).to_have_text(
        re.compile(r"3 jobs succeeded and 1 failed in the last hour; the busiest slot had [234]\.")
    )
    # Three /job calls waited for a first attempt; all four ran, each for about a second
    # or more (the failing one exits at once).
    expect(section.locator("[data-summary=activity-wait]")).to_contain_text("over 3 jobs")
    run_summary = section.locator("[data-summary=activity-run]")
    expect(run_summary).to_contain_text("over 4 jobs")
    p95 = re.search(r"p95 ([\d.]+) s", run_summary.inner_text())
    assert p95 is not None and float(p95.group(1)) >= 1.0, run_summary.inner_text()
    # A point per line in the one or two minutes the jobs ended in, none in the empty ones.
    for chart in ("activity-run", "activity-wait"):
        p50 = section.locator(f"svg[data-chart={chart}] .p50 .dot").count()
        assert 1 <= p50 <= 2
        assert section.locator(f"svg[data-chart={chart}] .p95 .dot").count() == p50
    screenshot(page, "service-activity-1h")

    for name, label in (("24h", "last 24 hours"), ("7d", "last 7 days")):
        section.get_by_role("link", name=name, exact=True).click()
        expect(page).to_have_url(re.compile(rf"\?window={name}$"))
        expect(section.get_by_role("heading", name=f"Jobs finished, {label}")).to_be_visible()
        expect(section.locator("svg[data-chart=throughput] desc")).to_contain_text(
            "3 jobs succeeded and 1 failed"
        )
        expect(section.locator("[data-summary=activity-run]")).to_contain_text("over 4 jobs")
        screenshot(page, f"service-activity-{name}")

    # The overview shows the same for the whole platform.
    page.goto(f"{platform.url}/ui")
    expect(page.locator("[data-summary=chart-run]")).to_contain_text("over 4 jobs")
    expect(page.locator("[data-summary=chart-wait]")).to_contain_text("over 3 jobs")
    screenshot(page, "overview-activity")
    assert errors == []


def test_the_charts_fit_a_phone(platform: RunningServer, browser: Any) -> None:
    page = signed_in(browser, platform, PHONE)
    page.goto(f"{platform.url}/ui/services/{SERVICE}")
    chart = page.locator("svg[data-chart=activity-run]")
    box = chart.bounding_box()
    assert box is not None and 0 < box["width"] <= PHONE["width"]
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    screenshot(page, "service-activity-phone")


def test_a_stranger_sees_no_activity(platform: RunningServer) -> None:
    answer = httpx.get(f"{platform.url}/ui/services/{SERVICE}", follow_redirects=False)
    assert answer.status_code in (302, 303, 307)
