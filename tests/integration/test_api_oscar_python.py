"""The official `oscar_python` client package against our server, unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from oscar_python.client import Client

from tests.support.server import RunningServer, start_server

FDL = """\
functions:
  oscar:
  - oscar-py-test:
      name: from-python
      cpu: '0.5'
      memory: 128Mi
      image: oscar-test/busybox:latest
      script: script.sh
      environment:
        Variables:
          GREETING: hello
      input:
      - storage_provider: minio.default
        path: from-python/in
      output:
      - storage_provider: minio.default
        path: from-python/out
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / "data", env={"OSCAR_PASSWORD": "python-client-password"})
    yield running
    running.stop()


def test_service_lifecycle_with_oscar_python(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("#!/bin/sh\necho $GREETING\n")
    fdl = tmp_path / "fdl.yaml"
    fdl.write_text(FDL)
    client = Client(
        {
            "cluster_id": "oscar-py-test",
            "endpoint": server.url,
            "user": server.username,
            "password": server.password,
            "ssl": "False",
        }
    )
    assert client.health_check().text == "Ok"
    assert json.loads(client.get_cluster_info().text)["version"]
    provider = json.loads(client.get_cluster_config().text)["minio_provider"]
    assert provider["endpoint"] == server.s3_url and provider["access_key"] == server.username
    assert json.loads(client.get_cluster_status().text)["cluster"]["nodes_count"] == 1

    assert client.create_service(str(fdl)).status_code == 201
    with pytest.raises(ValueError, match="already present"):
        client.create_service(str(fdl))  # the client checks with a GET first

    names = [service["name"] for service in json.loads(client.list_services().text)]
    assert names == ["from-python"]
    service = json.loads(client.get_service("from-python").text)
    assert service["script"] == "#!/bin/sh\necho $GREETING\n"
    assert service["environment"]["variables"] == {"GREETING": "hello"}
    assert service["cpu"] == "0.5" and len(service["token"]) == 64

    fdl.write_text(FDL.replace("128Mi", "256Mi"))
    assert client.update_service("from-python", str(fdl)).status_code == 204
    updated = json.loads(client.get_service("from-python").text)
    assert updated["memory"] == "256Mi" and updated["token"] == service["token"]

    # The client's storage helper takes minio.default's endpoint and keys from /system/config.
    (tmp_path / "photo.jpg").write_bytes(b"jpeg")
    storage = client.create_storage_client("from-python")
    storage.upload_file("minio.default", str(tmp_path / "photo.jpg"), "from-python/in")
    listed = storage.list_files_from_path("minio.default", "from-python/in")
    assert "in/photo.jpg" in [item["Key"] for item in listed["Contents"]]

    assert client.remove_service("from-python").status_code == 204
    assert json.loads(client.list_services().text) == []
