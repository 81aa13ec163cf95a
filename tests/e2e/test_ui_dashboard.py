"""The dashboard in headless Chromium against a real `oscar serve` on the Docker runtime.

One journey, as a user walks it: sign in, create a service from the form, upload files into its
input folder (picker and drag-and-drop), watch the jobs appear and succeed without reloading,
follow a running job's log, download an output, invoke the service, retry and delete a failed
job, edit and import services, delete the service, sign out. Every page is saved as a
screenshot under test-artifacts/ui/, at desktop and at phone width.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    DESKTOP,
    PHONE,
    screenshot,
)
from tests.support.server import RunningServer, start_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]  # a browser through a whole flow

IMAGE = "oscar-test/busybox:latest"
SERVICE = "ui-grey"
SCRIPT = """\
name=$(basename "$INPUT_FILE_PATH")
echo "processing $name"
case "$name" in
  *slow*) sleep 3 ;;
  *fail*) echo "cannot process $name" >&2; exit 3 ;;
esac
tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$name"
echo "$GREETING from $OSCAR_SERVICE_NAME"
"""


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, docker_client: object
) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("ui") / "data")
    yield running
    running.stop()


def _succeeded_jobs(platform: RunningServer, service: str | None = None) -> int:
    """Succeeded jobs of a service or of all, as the REST API counts them (a `/run` is a job
    too, where the server has it)."""
    with platform.client() as client:
        names = (
            [service]
            if service
            else [each["name"] for each in client.get("/system/services").json()]
        )
        return sum(
            job["status"] == "Succeeded"
            for name in names
            for job in client.get(f"/system/logs/{name}").json()["jobs"].values()
        )


def test_a_user_runs_a_service_from_the_dashboard(
    platform: RunningServer, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    ui = f"{platform.url}/ui"

    # Signing in: the dashboard sends a stranger to the sign-in page, refuses a wrong password.
    page.goto(ui)
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui$"))
    page.get_by_label("User").fill(platform.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user or password.")
    screenshot(page, "login-refused")
    page.get_by_label("Password").fill(platform.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    screenshot(page, "overview-empty")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    # Creating a service from the form; a bad field comes back named, with what was typed.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Services").click()
    page.get_by_role("link", name="New service").click()
    page.get_by_label("Name", exact=True).fill(SERVICE)
    page.get_by_label("Image", exact=True).fill(IMAGE)
    page.get_by_label("CPU per job").fill("0.1")
    page.get_by_label("Memory per job").fill("lots")
    page.get_by_label("Script", exact=True).fill(SCRIPT)
    page.get_by_label("Environment variables").fill("GREETING=hello")
    page.get_by_label("Input 1 path").fill(f"{SERVICE}/in")
    page.get_by_label("Output 1 path").fill(f"{SERVICE}/out")
    screenshot(page, "service-form-new")
    page.get_by_role("button", name="Create service").click()
    expect(page.get_by_role("alert")).to_contain_text("memory")
    expect(page.get_by_label("Script", exact=True)).to_have_value(SCRIPT)
    screenshot(page, "service-form-refused")
    page.get_by_label("Memory per job").fill("64Mi")
    page.get_by_role("button", name="Create service").click()
    expect(page.get_by_role("status")).to_have_text(f"Service {SERVICE} created.")
    expect(page.get_by_role("heading", name=SERVICE, exact=True)).to_be_visible()

    # A second tab shows the service's jobs, and must see new ones without reloading.
    watcher = context.new_page()
    watcher.on("pageerror", lambda error: script_errors.append(str(error)))
    watcher.goto(f"{ui}/services/{SERVICE}")
    expect(watcher.get_by_text("No jobs yet.")).to_be_visible()

    # Uploading into the input folder: the picker (one file) and drag-and-drop (two files).
    page.get_by_role("link", name=f"{SERVICE}/in").first.click()
    expect(page.get_by_text("each file uploaded here starts a job")).to_be_visible()
    hello = tmp_path / "hello.txt"
    hello.write_text("hello dashboard\n")
    page.get_by_label("Choose files").set_input_files(str(hello))
    expect(page.locator("[data-uploads] li.done")).to_have_count(1)
    expect(page.get_by_role("row", name=re.compile(r"^hello\.txt"))).to_be_visible()
    transfer = page.evaluate_handle(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["slow but fine\\n"], "slow.txt", {type: "text/plain"}));
            transfer.items.add(new File(["broken\\n"], "fail.txt", {type: "text/plain"}));
            return transfer;
        }"""
    )
    page.dispatch_event("form[data-upload]", "drop", {"dataTransfer": transfer})
    expect(page.locator("[data-uploads] li.done")).to_have_count(3)
    expect(page.get_by_role("status")).to_have_text(
        "2 files start jobs of ui-grey: follow them there."
    )
    expect(page.get_by_role("row", name=re.compile(r"^slow\.txt"))).to_be_visible()
    screenshot(page, "bucket-input-folder")

    # The jobs appear in the other tab, live; the slow one's log is followed while it runs.
    jobs = watcher.locator("[data-jobs-body] tr")
    expect(jobs).to_have_count(3)
    slow_row = watcher.get_by_role("row", name=re.compile(r"slow\.txt"))
    slow_row.get_by_role("link").click()
    log = watcher.locator("[data-log]")
    expect(log).to_contain_text("processing slow.txt")
    screenshot(watcher, "job-following")
    expect(log).to_contain_text("hello from ui-grey")
    expect(watcher.locator("[data-job-status]")).to_have_text("Succeeded")
    expect(watcher.get_by_text("The job has finished.")).to_be_visible()
    screenshot(watcher, "job-succeeded")
    watcher.go_back()
    expect(watcher.locator("[data-jobs-body] .badge.succeeded")).to_have_count(2)
    expect(watcher.locator("[data-jobs-body] .badge.failed")).to_have_count(1)
    screenshot(watcher, "service-jobs")
    watcher.close()

    # Downloading an output from the output folder.
    page.goto(f"{ui}/services/{SERVICE}")
    page.get_by_role("link", name=f"{SERVICE}/out").first.click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download hello.txt").click()
    download = download_info.value
    assert download.suggested_filename == "hello.txt"
    assert Path(download.path()).read_text() == "HELLO DASHBOARD\n"
    screenshot(page, "bucket-output-folder")

    # The failed job: its reason in the log, retried (fails again), then deleted.
    page.goto(f"{ui}/services/{SERVICE}")
    page.get_by_role("row", name=re.compile(r"fail\.txt")).get_by_role("link").click()
    expect(page.locator("[data-job-status]")).to_have_text("Failed")
    expect(page.locator("[data-log]")).to_contain_text("cannot process fail.txt")
    screenshot(page, "job-failed")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_have_text("The job runs again.")
    expect(page.get_by_text("The job has finished.")).to_be_visible()
    expect(page.locator("[data-job-attempts]")).to_have_text("2")
    expect(page.locator("[data-job-node]")).to_have_text(socket.gethostname())
    expect(page.locator("[data-job-status]")).to_have_text("Failed")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete job").click()
    expect(page.get_by_role("status")).to_contain_text("deleted")
    expect(page.locator("[data-jobs-body] tr")).to_have_count(2)

    # Invoking: asynchronously (a job whose input is the text), and synchronously.
    page.get_by_label("Input text").fill("direct call")
    page.get_by_role("button", name="Queue a job (asynchronous)").click()
    expect(page.get_by_role("status")).to_contain_text("queued")
    expect(page.locator("[data-jobs-body] .badge.succeeded")).to_have_count(3)
    page.get_by_label("Input text").fill("in and out")
    page.get_by_role("button", name="Run and wait (synchronous)").click()
    expect(page.locator("#invoke-output")).to_have_text("IN AND OUT")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download result").click()
    assert Path(download_info.value.path()).read_bytes() == b"IN AND OUT"
    screenshot(page, "service-invoked")
    page.get_by_role("link", name="Its job and log").click()
    expect(page.locator("[data-job-status]")).to_have_text("Succeeded")
    expect(page.locator("[data-log]")).to_contain_text("processing")
    screenshot(page, "job-synchronous")
    page.go_back()

    # Editing keeps what the form does not show and changes what it does.
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("readonly", "")
    page.get_by_label("Memory per job").fill("96Mi")
    page.get_by_role("button", name="Add input").click()
    expect(page.get_by_label("Input 3 path")).to_be_focused()
    expect(page.get_by_label("Prefixes of input 3")).to_have_value("")
    screenshot(page, "service-form-edit")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text(f"Service {SERVICE} saved.")
    expect(page.get_by_text("0.1 CPU, 96Mi memory")).to_be_visible()

    # Importing a JSON definition from a file.
    definition = tmp_path / "ui-echo.json"
    definition.write_text(
        json.dumps({"name": "ui-echo", "image": IMAGE, "script": "echo hi", "memory": "32Mi"})
    )
    page.goto(f"{ui}/services")
    page.get_by_label("FDL (YAML) or JSON file").set_input_files(str(definition))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_have_text("Imported ui-echo.json: created ui-echo.")
    page.goto(f"{ui}/services")
    expect(page.get_by_role("row", name=re.compile(r"^ui-echo"))).to_be_visible()
    expect(
        page.get_by_role("row", name=re.compile(rf"^{SERVICE}")).locator('[data-count="succeeded"]')
    ).to_have_text(str(_succeeded_jobs(platform, SERVICE)))
    screenshot(page, "services")
    page.goto(f"{ui}/storage")
    expect(page.get_by_role("row", name=re.compile(rf"^{SERVICE}"))).to_contain_text("input")
    screenshot(page, "storage")
    page.get_by_role("link", name=f"Delete bucket {SERVICE}").click()
    expect(page.get_by_role("alert")).to_contain_text("Services use this bucket")
    screenshot(page, "bucket-delete-confirmation")
    page.goto(ui)
    succeeded = _succeeded_jobs(platform)
    expect(page.locator(".tiles .succeeded .number")).to_have_text(str(succeeded))
    throughput = page.locator("svg[data-chart=throughput] desc")
    expect(throughput).to_contain_text(f"{succeeded} jobs succeeded")
    # The machines that run jobs: this one in local mode, with nothing running now.
    this_node = page.locator(f"[data-nodes] tr[data-node='{socket.gethostname()}']")
    expect(this_node).to_contain_text("ready")
    expect(this_node.locator("[data-node-jobs]")).to_have_text("0")
    screenshot(page, "overview")

    # The same pages at phone width, signed in with the same session.
    phone = browser.new_context(viewport=PHONE, storage_state=context.storage_state())
    small = phone.new_page()
    small.on("pageerror", lambda error: script_errors.append(str(error)))
    for name, path in [
        ("overview", ""),
        ("services", "/services"),
        ("service", f"/services/{SERVICE}"),
        ("service-form", f"/services/{SERVICE}/edit"),
        ("bucket", f"/storage/{SERVICE}?prefix=in/"),
    ]:
        small.goto(ui + path)
        screenshot(small, f"phone-{name}")
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name} overflows a phone screen ({width} px)"
    phone.close()

    # Deleting the service, after a confirmation page, with its buckets.
    page.goto(f"{ui}/services/{SERVICE}")
    page.get_by_role("link", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", name=f"Delete service {SERVICE}?")).to_be_visible()
    screenshot(page, "service-delete-confirmation")
    page.get_by_label(re.compile("Also delete its bucket")).check()
    page.get_by_role("button", name=f"Delete {SERVICE}").click()
    expect(page.get_by_role("status")).to_have_text(f"Service {SERVICE} deleted with its buckets.")
    expect(page.get_by_role("row", name=re.compile(rf"^{SERVICE}"))).to_have_count(0)
    page.goto(f"{ui}/storage/{SERVICE}")
    expect(page.get_by_role("alert")).to_have_text(f"There is no bucket named {SERVICE}.")
    screenshot(page, "error-not-found")

    # Signing out ends the session.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("Signed out.")
    page.goto(f"{ui}/services")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    context.close()
    assert script_errors == []
