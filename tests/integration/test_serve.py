"""`oscar serve` as a user runs it: a subprocess on free ports."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import OSCAR, RunningServer, free_port, start_server


def test_health_answers_ok_without_credentials(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/health")
    assert (response.status_code, response.text) == (200, "Ok")


def test_other_routes_need_credentials(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/system/info").status_code == 401
    wrong = httpx.get(f"{server.url}/system/info", auth=("oscar", "wrong"))
    assert wrong.status_code == 401 and "Basic" in wrong.headers["www-authenticate"]
    assert httpx.get(f"{server.url}/system/info", auth=server.auth).status_code == 200


def test_a_trailing_slash_answers_the_same_without_a_redirect(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/system/info/", auth=server.auth)
    assert response.status_code == 200 and not response.history


def test_the_generated_password_is_printed_once_and_stored_owner_only(tmp_path: Path) -> None:
    first = start_server(tmp_path / "data")
    first.stop()
    stored = json.loads((tmp_path / "data" / "credentials.json").read_text())
    assert (tmp_path / "data" / "credentials.json").stat().st_mode & 0o077 == 0
    assert stored["endpoint"] == first.url
    output = first.log()
    assert output.count(stored["password"]) == 1
    assert first.url in output

    second = start_server(tmp_path / "data")
    second.stop()
    assert stored["password"] not in second.log().replace(output, "")
    assert second.password == stored["password"]


def test_secrets_never_reach_the_log(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data", env={"OSCAR_PASSWORD": "pw-from-environment"})
    httpx.get(f"{running.url}/system/info", auth=("oscar", "pw-from-environment"))
    running.stop()
    assert "pw-from-environment" not in running.log()


def test_a_second_instance_on_the_same_port_fails_clearly(
    server: RunningServer, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            OSCAR,
            "serve",
            "--data-dir",
            str(tmp_path / "other"),
            "--port",
            str(server.port),
            "--s3-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert f"127.0.0.1:{server.port}" in result.stderr
    assert "already in use" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_s3_port_names_the_s3_flag(server: RunningServer, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            OSCAR,
            "serve",
            "--data-dir",
            str(tmp_path / "other"),
            "--port",
            str(free_port()),
            "--s3-port",
            str(server.s3_port),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3 and "--s3-port" in result.stderr


def test_an_unwritable_data_dir_fails_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [
            OSCAR,
            "serve",
            "--data-dir",
            str(blocker / "data"),
            "--port",
            str(free_port()),
            "--s3-port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert "not writable" in result.stderr and "--data-dir" in result.stderr


def test_an_invalid_setting_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [OSCAR, "serve", "--data-dir", str(tmp_path), "--runtime", "kubernetes"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "runtime" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_exits_zero_within_five_seconds(tmp_path: Path, sig: int) -> None:
    running = start_server(tmp_path / "data")
    started = time.monotonic()
    running.process.send_signal(sig)
    assert running.process.wait(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert "shutting down" in running.log()
