"""A real `oscar serve` in a subprocess on free ports, for wire-level tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

OSCAR = str(Path(sys.executable).with_name("oscar"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """One `oscar serve` process and how to reach it."""

    process: subprocess.Popen[str]
    data_dir: Path
    port: int
    s3_port: int
    username: str
    password: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=30, **options)  # type: ignore[arg-type]

    def create_service(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Register a service through the REST API; anything but 201 fails with the answer."""
        with self.client() as client:
            created = client.post("/system/services", json=definition)
        assert created.status_code == 201, created.text
        answer: dict[str, Any] = created.json()
        return answer

    def s3_client(self, **config: Any) -> Any:
        """A boto3 S3 client signed with the admin's keys; `config` goes to botocore's Config."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id=self.username,
            aws_secret_access_key=self.password,
            region_name="us-east-1",
            config=Config(**config) if config else None,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server and wait for it to exit; killed after `timeout` seconds (a stopping
        server removes its containers, which takes the daemon seconds on a loaded machine)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """kill -9: what a crash looks like."""
        self.process.kill()
        self.process.wait()


def start_server(
    data_dir: Path,
    *,
    port: int | None = None,
    s3_port: int | None = None,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    wait: float = 120,
    log_name: str | None = None,
) -> RunningServer:
    """Start `oscar serve` and wait until `/health` answers; the process log goes to a file
    (`log_name` tells apart the logs of servers sharing a data directory). A start takes
    seconds; `wait` is long because on a machine loaded by parallel tests the interpreter's
    imports alone have taken over a minute."""
    port = port or free_port()
    s3_port = s3_port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{log_name or data_dir.name}-server.log"
    process_env = {key: value for key, value in os.environ.items() if not key.startswith("OSCAR_")}
    process_env.update({"OSCAR_USERNAME": "oscar", "OSCAR_LOG_LEVEL": "DEBUG"})
    process_env.update(env or {})
    command = [OSCAR, "serve", "--data-dir", str(data_dir), "--port", str(port)]
    command += ["--s3-port", str(s3_port), *(args or [])]
    log_file = log_path.open("a")
    process = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, env=process_env, text=True
    )
    log_file.close()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"oscar serve exited {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).text == "Ok":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        process.kill()
        process.wait()
        raise RuntimeError(f"oscar serve did not answer in {wait} s:\n{log_path.read_text()}")
    password = (
        process_env.get("OSCAR_PASSWORD")
        or json.loads((data_dir / "credentials.json").read_text())["password"]
    )
    return RunningServer(
        process,
        data_dir,
        port,
        s3_port,
        process_env["OSCAR_USERNAME"],
        password,
        log_path,
        extra_env=env or {},
    )
