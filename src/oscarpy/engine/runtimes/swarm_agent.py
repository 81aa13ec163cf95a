"""The node side of the `swarm` runtime: runs as the Swarm task of one job attempt.

Standard library only: this file is the whole program of the supervisor image
(`oscar-py/supervisor`), next to a Python interpreter. It talks to two things:

* the platform's staging endpoint (`OSCAR_STAGING_URL`, served by the `swarm` runtime on the
  manager): it fetches the attempt's spec and work directory, streams the script's output back
  while it runs, and sends back the outputs and the exit status;
* the Docker Engine of the node it runs on (the socket mounted at `DOCKER_SOCKET`): it runs the
  script in the service's image, in a fresh container with the work directory bind-mounted,
  exactly as the local `docker` runtime does.

The spec (image, environment, limits) is fetched, not passed in the Swarm service: the job's
environment (service secrets) never appears in the cluster's service definitions.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import struct
import sys
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

DOCKER_SOCKET = "/var/run/docker.sock"
WORK_MOUNT = "/oscar-job"
_RESULT_RETRY_SECONDS = 600.0
_OUTPUT_RETRY_SECONDS = 1.0
IMAGE_CHECK_SECONDS = 30.0
"""As `docker_api.IMAGE_CHECK_SECONDS`: how long a pull on a node counts as fresh."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DockerError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _docker(
    method: str,
    path: str,
    body: Any = None,
    *,
    stream: bool = False,
    headers: dict[str, str] | None = None,
) -> Any:
    connection = _UnixConnection(os.environ.get("OSCAR_DOCKER_SOCKET", DOCKER_SOCKET))
    payload = None if body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if payload is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, payload, headers)
    response = connection.getresponse()
    if response.status >= 300:
        detail = response.read()[:500].decode(errors="replace").strip()
        raise DockerError(response.status, f"Docker {method} {path}: {response.status} {detail}")
    if stream:
        return response
    data = response.read()
    connection.close()
    return json.loads(data) if data else None


def _staging(base: str, method: str, path: str, body: Any = None, headers: Any = None) -> Any:
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=120)
    connection.request(method, url.path + path, body, headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.status >= 300:
        raise RuntimeError(f"staging {method} {path}: {response.status} {data[:500]!r}")
    return data


def _frames(response: Any) -> Iterator[bytes]:
    """Payloads of Docker's multiplexed log stream (8-byte header, then the bytes)."""
    while True:
        header = response.read(8)
        if len(header) < 8:
            return
        (size,) = struct.unpack(">L", header[4:])
        payload = response.read(size)
        if not payload:
            return
        yield payload


class _OutputSender:
    """Streams output to the manager as one chunked POST, reconnecting if the manager restarts
    (what is printed while it is away is lost to the job log, not to the job)."""

    def __init__(self, base: str) -> None:
        self._base = urllib.parse.urlsplit(base)
        self._connection: http.client.HTTPConnection | None = None
        self._retry_at = 0.0

    def send(self, chunk: bytes) -> None:
        if self._connection is None and time.monotonic() >= self._retry_at:
            try:
                connection = http.client.HTTPConnection(
                    self._base.hostname or "", self._base.port, timeout=30
                )
                connection.putrequest("POST", self._base.path + "/output")
                connection.putheader("Transfer-Encoding", "chunked")
                connection.endheaders()
                self._connection = connection
            except OSError:
                self._retry_at = time.monotonic() + _OUTPUT_RETRY_SECONDS
        if self._connection is None:
            return
        try:
            self._connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            self._connection.close()
            self._connection = None
            self._retry_at = time.monotonic() + _OUTPUT_RETRY_SECONDS

    def forward(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            self.send(chunk)

    def close(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.send(b"0\r\n\r\n")
            self._connection.getresponse().read()
        except OSError:
            pass
        self._connection.close()


def directory_archive(directory: str) -> bytes:
    """A directory as an uncompressed tar (the agent and the manager exchange work this way)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(directory, arcname=".")
    return buffer.getvalue()


def _present(image: str) -> bool:
    try:
        _docker("GET", f"/images/{urllib.parse.quote(image, safe='')}/json")
    except DockerError as error:
        if error.status == 404:
            return False
        raise
    return True


def _pull(image: str, pull: dict[str, str]) -> None:
    """Pull `repository:tag` with the registry login, if any (in the request header only)."""
    query = urllib.parse.urlencode({"fromImage": pull["repository"], "tag": pull["tag"]})
    login = {"X-Registry-Auth": pull["auth"]} if pull.get("auth") else None
    response = _docker("POST", f"/images/create?{query}", stream=True, headers=login)
    # A pull that fails after it started says so in its progress stream, with status 200.
    for line in response:
        if line.strip() and "error" in (progress := json.loads(line)):
            raise DockerError(500, f"Docker pull {image}: {progress['error']}")


def ensure_image(image: str, pull: dict[str, str], node: str, node_work: str) -> None:
    """Get the image on this node as the service's pull policy says (as local mode does):
    `Always` pulls and falls back to the node's copy if the pull fails; `IfNotPresent` pulls an
    absent image; `Never` only uses the node's copy. Raises `DockerError` 404 if there is none.

    As in local mode, an image pulled (or tried) on this node in the last
    `IMAGE_CHECK_SECONDS` is not pulled again, and the agents of one node pull one at a time
    (a lock file in the node's work directory): a burst of `Always` jobs pulls once per node."""
    policy = pull.get("policy", "IfNotPresent")
    present = _present(image)
    if policy == "Never" and not present:
        raise DockerError(
            404, f"image {image} is not on node {node} and its image_pull_policy is Never"
        )
    if policy != "Always" and present:
        return
    marks = os.path.join(node_work, ".images")
    os.makedirs(marks, exist_ok=True)
    mark = os.path.join(marks, hashlib.sha256(image.encode()).hexdigest())
    with open(mark + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        present = present or _present(image)
        try:
            recent = time.time() - os.path.getmtime(mark) < IMAGE_CHECK_SECONDS
        except OSError:
            recent = False
        if present and recent:
            return
        try:
            _pull(image, pull)
        except (DockerError, OSError, ValueError) as error:
            if not present:
                raise DockerError(
                    404, f"image {image} is not on node {node} and cannot be pulled: {error}"
                ) from error
            print(f"oscar agent: {error}; running the copy node {node} has", file=sys.stderr)
        with open(mark, "w"):
            pass  # its time is when the image was last pulled (or tried)


def _header_text(text: str) -> str:
    return " ".join(text.split())[:500].encode("latin-1", "replace").decode("latin-1")


def _report(base: str, outputs: bytes, headers: dict[str, str]) -> None:
    """Hand the outcome to the manager, waiting out a manager restart."""
    deadline = time.monotonic() + _RESULT_RETRY_SECONDS
    while True:
        try:
            _staging(base, "PUT", "/result", outputs, headers)
            return
        except (OSError, RuntimeError) as error:
            if time.monotonic() > deadline:
                raise
            print(f"oscar agent: cannot report the result yet: {error}", file=sys.stderr)
            time.sleep(2)


def main() -> int:
    marks = [("agent", time.time())]
    node = os.environ.get("OSCAR_NODE", "")
    base = os.environ["OSCAR_STAGING_URL"].rstrip("/")
    node_work = os.environ.get("OSCAR_NODE_WORK", "/var/lib/oscar-py/node-work")
    spec = json.loads(_staging(base, "GET", "/spec"))
    work_dir = os.path.join(node_work, spec["name"])
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    with tarfile.open(fileobj=io.BytesIO(_staging(base, "GET", "/work"))) as archive:
        archive.extractall(work_dir, filter="fully_trusted")
    marks.append(("staged", time.time()))
    host_config = dict(spec["host_config"])
    host_config["Binds"] = [f"{work_dir}:{WORK_MOUNT}:rw"]
    if os.path.isdir(os.path.join(work_dir, "mnt")):  # OSCAR's `mount`, staged by the manager
        host_config["Binds"].append(f"{os.path.join(work_dir, 'mnt')}:/mnt:ro")
    environment = dict(spec["environment"])
    if node:  # OSCAR's RESOURCE_ID: the node that runs the job, not the manager
        environment["RESOURCE_ID"] = node
    name = urllib.parse.quote(spec["name"])
    try:
        _docker("DELETE", f"/containers/{name}?force=1")
    except DockerError:
        pass  # none left by an earlier try
    definition = {
        "Image": spec["image"],
        "Cmd": spec["command"],
        "Env": [f"{k}={v}" for k, v in environment.items()],
        "Labels": spec["labels"],
        "HostConfig": host_config,
    }
    if spec.get("user"):
        definition["User"] = spec["user"]
    try:
        ensure_image(spec["image"], spec.get("pull") or {}, node, node_work)
        container = str(_docker("POST", f"/containers/create?name={name}", definition)["Id"])
    except DockerError as error:
        # Said to the manager, so that the job's attempt records why (not "task failed").
        kind = "image" if error.status == 404 else "container"
        shutil.rmtree(work_dir, ignore_errors=True)
        _report(
            base,
            b"",
            {
                "X-Oscar-Error": kind,
                "X-Oscar-Message": _header_text(str(error)),
                "X-Oscar-Node": _header_text(node),
            },
        )
        return 1
    marks.append(("created", time.time()))

    def stop(_signum: int, _frame: Any) -> None:
        # The manager removed the task (a kill, a timeout, a deleted job): end the script too.
        try:
            _docker("DELETE", f"/containers/{container}?force=1")
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
            os._exit(143)

    signal.signal(signal.SIGTERM, stop)
    output = _OutputSender(base)
    try:
        _docker("POST", f"/containers/{container}/start")
        marks.append(("started", time.time()))
        logs = _docker(
            "GET", f"/containers/{container}/logs?follow=1&stdout=1&stderr=1", stream=True
        )
        follower = threading.Thread(target=output.forward, args=(_frames(logs),), daemon=True)
        follower.start()
        status = _docker("POST", f"/containers/{container}/wait")
        marks.append(("exited", time.time()))
        follower.join(30)
        output.close()
        state = _docker("GET", f"/containers/{container}/json")["State"]
        headers = {
            "X-Oscar-Exit-Code": str(status.get("StatusCode", -1)),
            "X-Oscar-OOM": "1" if state.get("OOMKilled") else "0",
            # When each step ended (Unix times), for the manager's per-attempt breakdown.
            "X-Oscar-Timing": " ".join(f"{step}={moment:.3f}" for step, moment in marks),
        }
        _report(base, directory_archive(os.path.join(work_dir, "output")), headers)
    finally:
        try:
            _docker("DELETE", f"/containers/{container}?force=1")
        except (OSError, DockerError):
            pass
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
