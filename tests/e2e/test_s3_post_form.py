"""An upload page as people write them: an HTML form with a POST policy from boto3's
`generate_presigned_post`, filled in and submitted by a real browser (headless Chromium)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from tests.integration.test_s3_support import client
from tests.support.browser import screenshot
from tests.support.server import RunningServer


def upload_page(form: dict[str, Any]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in form["fields"].items()
    )
    return (
        "<!doctype html><html><body>"
        f'<form action="{escape(form["url"])}" method="post" enctype="multipart/form-data">'
        f'{hidden}<input type="file" name="file" id="file">'
        '<button type="submit" id="send">Upload</button></form></body></html>'
    )


def test_a_browser_submits_an_upload_form(
    browser: Any, wire_server: RunningServer, tmp_path: Path
) -> None:
    s3 = client(wire_server, signature_version="s3v4")
    s3.create_bucket(Bucket="browser-forms")
    form = s3.generate_presigned_post(
        "browser-forms",
        "inbox/${filename}",
        Fields={"success_action_status": "201"},
        Conditions=[
            ["starts-with", "$key", "inbox/"],
            {"success_action_status": "201"},
            ["content-length-range", 1, 1024 * 1024],
        ],
    )
    chosen = tmp_path / "notes from the field.txt"
    chosen.write_text("typed in a browser\n")
    page = browser.new_page()
    try:
        page.set_content(upload_page(form))
        page.set_input_files("#file", str(chosen))
        with page.expect_navigation() as navigation:
            page.click("#send")
        response = navigation.value
        assert response is not None and response.status == 201
        assert "inbox/notes from the field.txt" in page.content()
        screenshot(page, "s3-post-form-result")
    finally:
        page.close()

    got = s3.get_object(Bucket="browser-forms", Key="inbox/notes from the field.txt")
    assert got["Body"].read() == b"typed in a browser\n"
