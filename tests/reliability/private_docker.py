"""A private Docker Engine for tests that stop the daemon: the shared one is used by everybody
else's tests, so it is never stopped. This one has its own socket, data, exec root, pid file and
network namespace, no bridge and no iptables rules, and holds only the test image, loaded from
the shared daemon."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import require_service

IMAGE = "oscar-test/busybox:latest"


class PrivateDocker:
    def __init__(self, root: Path, options: tuple[str, ...] = ()) -> None:
        """`options`: more dockerd flags (such as `--userns-remap=default`)."""
        self.root = root
        self.options = options
        self.socket = root / "docker.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 120) -> None:
        # Its own network namespace: a dockerd started with --bridge=none deletes the host's
        # `docker0` interface (moby's removeDefaultBridgeInterface), which would cut the shared
        # daemon's containers off their network.
        command = [
            "unshare", "--net",
            "dockerd",
            "--host", self.host,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "docker.pid"),
            "--bridge=none", "--iptables=false", "--ip6tables=false",
            *self.options,
        ]  # fmt: skip
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited:\n{self.log()[-3000:]}")
            try:
                # A daemon still starting may accept the connection and answer late: each probe
                # gets a few seconds, the start its whole `timeout` (a busy CI machine needs it).
                if self.docker("version", check=False, timeout=5).returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer in {timeout} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def docker(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", self.host, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def load_test_image(self) -> None:
        saved = subprocess.run(["docker", "save", IMAGE], capture_output=True, check=True)
        subprocess.run(
            ["docker", "-H", self.host, "load"], input=saved.stdout, capture_output=True, check=True
        )

    def log(self) -> str:
        path = self.root / "dockerd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def dockerd_available() -> bool:
    return shutil.which("dockerd") is not None and shutil.which("unshare") is not None


@contextmanager
def running_private_docker(prefix: str, options: tuple[str, ...] = ()) -> Iterator[PrivateDocker]:
    """A started private daemon holding the test image, removed afterwards (skips without
    `dockerd`, fails in CI)."""
    require_service(dockerd_available(), "no dockerd binary to start a private daemon")
    # A short path: the daemon's sockets must fit in a unix socket name.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o711)  # under userns-remap, the remapped root must pass through to its data
    daemon = PrivateDocker(root, options)
    try:
        daemon.start()
        daemon.load_test_image()
        yield daemon
    finally:
        daemon.remove()
