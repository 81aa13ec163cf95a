"""`enable_gpu` against the real Docker Engine, in process: refused (or warned of, with
`OSCAR_GPU=optional`) where the host has no GPU; where it has one, the job's container asks
the Docker Engine for the GPUs. This host has no NVIDIA GPU, so `OSCAR_GPU_DEVICE` points the
check at a file of the test's own to play one: the Docker Engine then refuses the request,
which shows it was made."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cli import TEST_IMAGE
from tests.support.inprocess import in_process_server

GPU_SERVICE = {"name": "gpu", "image": TEST_IMAGE, "script": "echo ran", "enable_gpu": True}


def test_no_gpu_refuses_enable_gpu_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSCAR_GPU_DEVICE", str(tmp_path / "no-such-device"))
    with in_process_server(tmp_path / "data", runtime="process") as api, api.client() as client:
        refused = client.post("/system/services", json=GPU_SERVICE)
        assert refused.status_code == 400
        assert "enable_gpu: this host has no GPU" in refused.text
        assert client.get("/system/config").json()["config"]["gpu_available"] is False
        assert client.post("/system/services", json={**GPU_SERVICE, "enable_gpu": False}).is_success
        changed = client.put("/system/services", json=GPU_SERVICE)
        assert changed.status_code == 400


def test_optional_gpu_accepts_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSCAR_GPU_DEVICE", str(tmp_path / "no-such-device"))
    with (
        in_process_server(tmp_path / "data", runtime="process", gpu="optional") as api,
        api.client() as client,
    ):
        created = client.post("/system/services", json=GPU_SERVICE)
        assert created.status_code == 201
        assert created.json()["warnings"] == [
            "enable_gpu: this host has no GPU; the service's jobs run on the CPU"
        ]


@pytest.mark.docker
def test_a_gpu_host_asks_docker_for_the_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: object
) -> None:
    device = tmp_path / "nvidiactl"
    device.touch()
    monkeypatch.setenv("OSCAR_GPU_DEVICE", str(device))
    with in_process_server(tmp_path / "data") as api, api.client() as client:
        assert client.get("/system/config").json()["config"]["gpu_available"] is True
        created = client.post("/system/services", json=GPU_SERVICE)
        assert created.status_code == 201
        assert created.json()["warnings"] == []
        job = client.post("/job/gpu", json={}).json()["job_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = client.get(f"/system/logs/gpu/{job}").text
            if "capabilities: [[gpu]]" in log:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no GPU request reached the Docker Engine: {log}")
