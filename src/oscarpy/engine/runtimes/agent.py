"""The warm containers' agent (`agent.c`): built once per source version with the host's C
compiler, mounted read-only into each warm container, and called over a Unix socket.

A call through the agent costs a fork inside the container instead of an Engine API exec (two
HTTP round trips and a runc start). Without a C compiler (`cc`) there is no agent, and warm
containers take their calls through `docker exec` as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from oscarpy.engine.errors import ContainerError, ContainerGone
from oscarpy.engine.runtimes.base import OutputSink

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("agent.c")
BINARY = "oscar-agent"
_CONNECT_SECONDS = 10.0
_GRACE_SECONDS = 10.0
"""How long after its timeout a call may take before the server gives up on the agent (it
kills the script itself at the timeout)."""


def build(directory: Path) -> Path | None:
    """The directory holding the agent built from this version's source (built now if needed),
    or `None` when this host has no C compiler or the build fails (warned once)."""
    source = SOURCE.read_bytes()
    target = directory / hashlib.sha256(source).hexdigest()[:16]
    if (target / BINARY).is_file():
        os.chmod(target / BINARY, 0o755)  # built by a version that left it 0700
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.warning("no C compiler (cc): warm containers take their calls through docker exec")
        return None
    building = directory / f".building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        subprocess.run(
            [compiler, "-static", "-Os", "-o", str(building / BINARY), str(SOURCE)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        # Executable by a container's root that is no root of the host (userns-remap),
        # whatever the server's umask.
        os.chmod(building / BINARY, 0o755)
        os.chmod(building, 0o755)
        try:
            os.rename(building, target)
        except OSError:  # another process built it first
            shutil.rmtree(building, ignore_errors=True)
    except (OSError, subprocess.SubprocessError) as error:
        shutil.rmtree(building, ignore_errors=True)
        detail = getattr(error, "stderr", b"") or b""
        log.warning(
            "cannot build the warm containers' agent (%s %s); calls go through docker exec",
            error,
            detail.decode(errors="replace")[-500:],
        )
        return None
    return target


class AgentAddress:
    """Where the server reaches a container's agent: its socket in the control directory,
    named through a descriptor of that directory, so that a deep data directory stays within
    the 108 bytes of a socket address and the path is resolved once."""

    SOCKET = "agent.sock"

    def __init__(self, control: Path) -> None:
        self._directory = os.open(control, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)

    @property
    def path(self) -> str:
        return f"/proc/self/fd/{self._directory}/{self.SOCKET}"

    def close(self) -> None:
        if self._directory >= 0:
            os.close(self._directory)
            self._directory = -1


@dataclass(frozen=True)
class AgentEnd:
    """How a call's script ended, as the agent saw it."""

    exit_code: int
    """As a shell reports it: the exit status, or 128 + n when signal n killed it."""
    timed_out: bool


def wait_until_listening(address: AgentAddress, alive: float = _CONNECT_SECONDS) -> None:
    """Wait for the agent of a new container to listen on `path`; raises `ContainerError`."""
    deadline = time.monotonic() + alive
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(address.path)
                return  # the agent takes this as an empty call and waits for the next
        except OSError as error:
            if time.monotonic() > deadline:
                raise ContainerError(f"the agent did not start listening: {error}") from error
            time.sleep(0.01)


def call(
    address: AgentAddress,
    user: tuple[int, int],
    timeout: float | None,
    work_dir: str,
    script: str,
    environment: dict[str, str],
    on_output: OutputSink,
) -> AgentEnd:
    """Run `/bin/sh script` in `work_dir` through the agent at `address`; output goes to
    `on_output` as it comes. Raises `ContainerGone` if the agent does not answer (the container
    is dead) and `ContainerError` if it stops answering mid-call."""
    fields = [str(user[0]), str(user[1]), str(round((timeout or 0) * 1000)), work_dir, script]
    fields += [f"{name}={value}" for name, value in environment.items()]
    payload = b"".join(field.encode() + b"\0" for field in fields)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            connection.connect(address.path)
        except OSError as error:
            raise ContainerGone(f"the warm container's agent does not answer: {error}") from error
        connection.settimeout(None if timeout is None else timeout + _GRACE_SECONDS)
        try:
            connection.sendall(struct.pack("=I", len(payload)) + payload)
            reader = connection.makefile("rb")
            while True:
                header = reader.read(5)
                if len(header) < 5:
                    raise ContainerError("the warm container's agent hung up mid-call")
                kind, size = header[:1], struct.unpack("=I", header[1:])[0]
                body = reader.read(size)
                if len(body) < size:
                    raise ContainerError("the warm container's agent hung up mid-call")
                if kind == b"O":
                    on_output(body)
                elif kind == b"X":
                    (status,) = struct.unpack("=i", body[:4])
                    return AgentEnd(_shell_status(status), bool(body[4]))
        except OSError as error:  # includes the socket's own timeout
            raise ContainerError(f"lost the call to the warm container's agent: {error}") from error
    finally:
        connection.close()


def _shell_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
