"""OSCAR's image allow-list (`PUT /system/config` `allowed_image_repositories`), in process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcessServer, in_process_server


@pytest.fixture
def api(tmp_path: Path) -> Iterator[InProcessServer]:
    with in_process_server(tmp_path / "data", runtime="process") as running:
        yield running


def _service(name: str, image: str) -> dict[str, str]:
    return {"name": name, "image": image, "script": "echo"}


def test_only_allowed_images_are_taken_once_a_list_is_set(api: InProcessServer) -> None:
    with api.client() as client:
        assert client.post("/system/services", json=_service("before", "any/image")).is_success
        answer = client.put(
            "/system/config", json={"allowed_image_repositories": ["ghcr.io/grycap/", "busybox"]}
        )
        assert answer.status_code == 200
        assert answer.json() == ["ghcr.io/grycap/", "busybox"]
        shown = client.get("/system/config").json()["allowed_image_repositories"]
        assert shown == ["ghcr.io/grycap/", "busybox"]

        assert client.post("/system/services", json=_service("ok", "busybox:1.36")).is_success
        refused = client.post("/system/services", json=_service("no", "evil.io/ghcr.io/grycap/x"))
        assert refused.status_code == 400
        assert "not allowed on this cluster" in refused.text
        # A service made before keeps working and can be edited, but not moved to another
        # image outside the list.
        kept = client.put("/system/services", json=_service("before", "any/image"))
        assert kept.is_success
        moved = client.put("/system/services", json=_service("before", "other/image"))
        assert moved.status_code == 400

        assert client.put("/system/config", json={"allowed_image_repositories": []}).json() == []
        assert client.post("/system/services", json=_service("free", "other/image")).is_success


def test_the_list_needs_the_admin_and_a_list_of_strings(api: InProcessServer) -> None:
    with api.client(authenticated=False) as anonymous:
        assert anonymous.put("/system/config", json={}).status_code == 401
    with api.client() as client:
        bad = client.put("/system/config", json={"allowed_image_repositories": "busybox"})
        assert bad.status_code == 400
        assert "allowed_image_repositories" in bad.text
