"""Cluster mode: each job attempt runs as a Docker Swarm task, on whichever node has room.

The manager side (this module) stages the job as in local mode, into a work directory on the
manager, then creates one Swarm *replicated-job* service per attempt: one task of the
supervisor image (`swarm_agent.py`), with the service's CPU and memory as reservations, so
that Swarm places it on a node with room. The agent fetches the work directory from this
runtime's staging endpoint (HTTP on an address the nodes reach; each attempt has its own
unguessable URL), runs the script in the service's image through the node's Docker Engine
with the same limits and restrictions as the `docker` runtime, streams the output back and
returns the outputs and the exit status. Storage, ledger and API stay on the manager.

Swarm does not end a task whose node died (it stays "running"): the runtime watches the nodes
itself and reports such an attempt as an infrastructure failure, so the job runs again
elsewhere. Services carry the `oscar.*` labels of the `docker` runtime, so a restarted manager
adopts the attempts still running.

Settings (environment): `DOCKER_HOST` (the manager's Docker Engine), `OSCAR_SWARM_STAGING`
(`host:port` the staging endpoint listens on and nodes connect to; default: this node's Swarm
address, port 9500), `OSCAR_SWARM_AGENT_IMAGE`, `OSCAR_SWARM_NODE_WORK` and
`OSCAR_SWARM_NODE_SOCKET` (a directory and the Docker socket on every node). See docs/cluster.md.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import tarfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import docker.auth
import docker.types

from oscarpy import __version__
from oscarpy.engine.errors import (
    ContainerError,
    ContainerMissing,
    ImageUnavailable,
    RuntimeUnavailable,
)
from oscarpy.engine.nodes import ClusterRuntime, NodeStatus
from oscarpy.engine.runtimes.base import (
    ImagePull,
    OutputSink,
    RunResult,
    RunSpec,
    Runtime,
    result_from_exit,
    timed_out,
)
from oscarpy.engine.runtimes.docker import (
    ENVIRONMENT_FILE,
    WORK_MOUNT,
    script_command,
    write_environment_file,
)
from oscarpy.engine.runtimes.docker_api import (
    LABEL_ATTEMPT,
    LABEL_INSTANCE,
    LABEL_JOB,
    LABEL_SERVICE,
    DockerConnection,
    default_pull_policy,
    restricted_options,
    split_image,
    translated,
)
from oscarpy.engine.runtimes.swarm_agent import directory_archive
from oscarpy.engine.scaler import PendingTask, ScalableCluster

log = logging.getLogger(__name__)

AGENT_IMAGE = f"oscar-py/supervisor:{__version__}"
NODE_WORK = "/var/lib/oscar-py/node-work"
NODE_SOCKET = "/var/run/docker.sock"
STAGING_PORT = 9500
"""Where agents report by default; it must not change across restarts of the manager, or the
agents of adopted attempts could not hand their results in."""
LABEL_TOKEN = "oscar.staging-token"
LABEL_WORK_DIR = "oscar.work-dir"
_WATCH_INTERVAL = 0.5
_RESULT_GRACE_SECONDS = 10.0
_ENDED = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}
_UNPLACED = {"new", "allocated", "pending"}
_HOLDING = {"assigned", "accepted", "preparing", "ready", "starting", "running"}
"""Task states in which a task holds its reservation on its node."""


@dataclass
class _Attempt:
    """What the staging endpoint knows of one attempt, and what the node reported back."""

    work_dir: Path
    spec: dict[str, Any]
    result: dict[str, Any] | None = None
    sink: OutputSink | None = None
    created: float = field(default_factory=time.time)
    done: threading.Event = field(default_factory=threading.Event)


class _Staging:
    """The HTTP endpoint the agents talk to: `/a/<token>/{spec,work,output,result}`."""

    def __init__(self, host: str, port: int) -> None:
        self.attempts: dict[str, _Attempt] = {}
        attempts = self.attempts

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("staging: " + format, *args)

            def _attempt(self) -> tuple[_Attempt, str] | None:
                parts = self.path.strip("/").split("/")
                found = attempts.get(parts[1]) if len(parts) == 3 and parts[0] == "a" else None
                if found is None:
                    self.send_error(404)
                    return None
                return found, parts[2]

            def do_GET(self) -> None:
                found = self._attempt()
                if found is None:
                    return
                attempt, what = found
                if what == "spec":
                    body = json.dumps(attempt.spec).encode()
                elif what == "work":
                    body = directory_archive(str(attempt.work_dir))
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                found = self._attempt()
                if found is None or found[1] != "output":
                    self.send_error(404) if found else None
                    return
                attempt = found[0]
                try:
                    for chunk in _chunks(self.rfile):
                        if attempt.sink is not None and not attempt.done.is_set():
                            attempt.sink(chunk)
                except (OSError, ValueError) as error:
                    log.debug("output stream of an attempt ended: %s", error)
                    return
                self._empty(204)

            def do_PUT(self) -> None:
                found = self._attempt()
                if found is None or found[1] != "result":
                    self.send_error(404) if found else None
                    return
                attempt = found[0]
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("X-Oscar-Error"):
                    attempt.result = {
                        "error": self.headers["X-Oscar-Error"],
                        "message": self.headers.get("X-Oscar-Message", ""),
                        "node": self.headers.get("X-Oscar-Node", ""),
                    }
                    attempt.done.set()
                    self._empty(204)
                    return
                output_dir = attempt.work_dir / "output"
                try:
                    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
                        archive.extractall(output_dir, filter="data")
                except (tarfile.TarError, OSError) as error:
                    self.send_error(400, f"bad output archive: {error}")
                    return
                attempt.result = {
                    "exit_code": int(self.headers.get("X-Oscar-Exit-Code", "-1")),
                    "oom": self.headers.get("X-Oscar-OOM") == "1",
                }
                log.debug(
                    "attempt %s: created %.3f, result %.3f, node steps %s",
                    attempt.spec.get("name"),
                    attempt.created,
                    time.time(),
                    self.headers.get("X-Oscar-Timing", ""),
                )
                attempt.done.set()
                self._empty(204)

            def _empty(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="swarm-staging", daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _chunks(stream: Any) -> Any:
    """The chunks of an HTTP/1.1 chunked request body, as they arrive."""
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            stream.readline()
            return
        chunk = stream.read(size)
        stream.readline()
        yield chunk


def _node_pull(image: str, pull: ImagePull | None) -> dict[str, str]:
    """How the agent gets the image on its node: the policy (resolved by the tag, as in local
    mode), what to pull, and the registry login as Docker's `X-Registry-Auth` header. It travels
    in the attempt's spec over the staging channel, never in a service definition or a log."""
    pull = pull or ImagePull()
    repository, tag = split_image(image)
    login = {"username": pull.username, "password": pull.password} if pull.username else None
    return {
        "policy": pull.policy or default_pull_policy(image),
        "repository": repository,
        "tag": tag or "",
        "auth": docker.auth.encode_header(login).decode() if login else "",
    }


class SwarmExecution:
    """One attempt's Swarm service (one task of the supervisor image)."""

    def __init__(self, runtime: SwarmRuntime, service_id: str, token: str) -> None:
        self._runtime = runtime
        self._service_id = service_id
        self._token = token
        self.node: str | None = None

    @property
    def id(self) -> str:
        return self._service_id

    def wait(
        self, timeout: float | None, on_output: OutputSink, *, follow_from: float | None = None
    ) -> RunResult:
        attempt = self._runtime.staging.attempts.get(self._token)
        if attempt is None:
            raise ContainerError(f"attempt of service {self._service_id[:12]} is not staged here")
        attempt.sink = on_output
        deadline = None if timeout is None else time.monotonic() + timeout
        ended_at: float | None = None
        while not attempt.done.wait(_WATCH_INTERVAL):
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                return timed_out(timeout or 0.0)
            task = self._runtime.task_of(self._service_id)
            if task is None:
                continue
            node = self._runtime.node_of(task)
            if node is not None and self.node != node.name:
                self.node = node.name
                on_output(f"oscar: attempt runs on node {node.name}\n".encode())
            if node is not None and node.state == "down":
                self.kill()
                raise ContainerError(f"node {node.name} went down while running the attempt")
            state = task.get("Status", {}).get("State")
            if state in _ENDED:
                # The agent reports before it exits; give a late report a moment.
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at > _RESULT_GRACE_SECONDS:
                    error = task.get("Status", {}).get("Err") or state
                    raise ContainerError(f"the task ended without a result: {error}")
        result = attempt.result or {}
        if "error" in result:
            # The agent names its node: it may fail before the watch has seen the task placed.
            self.node = self.node or result.get("node") or None
            where = f" on node {self.node}" if self.node else ""
            error = ImageUnavailable if result["error"] == "image" else ContainerError
            raise error(f"{result['message']}{where}")
        return result_from_exit(int(result.get("exit_code", -1)), oom=bool(result.get("oom")))

    def kill(self) -> None:
        self._runtime.remove_service(self._service_id)

    def writable_layer(self) -> Path | None:
        return None  # on another machine

    def remove(self) -> None:
        self._runtime.remove_service(self._service_id)
        self._runtime.staging.attempts.pop(self._token, None)


class SwarmRuntime:
    """Runs each job attempt as a one-task Swarm job service placed by Swarm."""

    name = "swarm"

    def __init__(self, instance: str, connection: DockerConnection | None = None) -> None:
        self.instance = instance
        self.agent_image = os.environ.get("OSCAR_SWARM_AGENT_IMAGE", AGENT_IMAGE)
        self.node_work = os.environ.get("OSCAR_SWARM_NODE_WORK", NODE_WORK)
        self.node_socket = os.environ.get("OSCAR_SWARM_NODE_SOCKET", NODE_SOCKET)
        self.connection = connection or DockerConnection()
        with translated("the Docker Engine does not answer"):
            swarm = self.connection.client.info().get("Swarm", {})
        if not swarm.get("ControlAvailable"):
            raise RuntimeUnavailable(
                "the swarm runtime needs a Swarm manager: run `docker swarm init` here (or set "
                "DOCKER_HOST to a manager)"
            )
        host, _, port = os.environ.get("OSCAR_SWARM_STAGING", "").rpartition(":")
        host = host or str(swarm.get("NodeAddr", "0.0.0.0"))
        self.staging = _Staging(host, int(port or STAGING_PORT))
        self.staging_url = f"http://{host}:{self.staging.port}"
        self._lock = threading.Lock()
        self._tasks: dict[str, dict[str, Any]] = {}
        self._nodes: dict[str, NodeStatus] = {}
        self._pending: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="swarm-watch", daemon=True)
        self._watcher.start()
        log.info("swarm runtime: staging endpoint %s for the nodes", self.staging_url)

    # -- cluster state, shared by every execution -------------------------------------------

    def _watch(self) -> None:
        """Poll tasks and nodes for every execution at once (one pair of API calls)."""
        while not self._stop.wait(_WATCH_INTERVAL):
            try:
                with translated("reading the swarm's tasks and nodes"):
                    tasks = self._client.api.tasks()
                    nodes = self._client.api.nodes()
            except RuntimeUnavailable as error:
                log.warning("cannot read the swarm's state: %s", error)
                continue
            latest: dict[str, dict[str, Any]] = {}
            for task in tasks:
                previous = latest.get(task["ServiceID"])
                if previous is None or task.get("Version", {}).get("Index", 0) > previous.get(
                    "Version", {}
                ).get("Index", 0):
                    latest[task["ServiceID"]] = task
            now = time.monotonic()
            with self._lock:
                self._tasks = latest
                self._nodes = {node["ID"]: self._node_status(node, tasks) for node in nodes}
                self._pending = {
                    task["ID"]: (self._pending.get(task["ID"], (now,))[0], task)
                    for task in tasks
                    if task.get("Status", {}).get("State") in _UNPLACED and not task.get("NodeID")
                }

    def pending_tasks(self) -> list[PendingTask]:
        """Tasks no node has room for (yet), with when the watch first saw them waiting."""
        with self._lock:
            waiting = list(self._pending.values())
        found = []
        for since, task in waiting:
            reservations = task.get("Spec", {}).get("Resources", {}).get("Reservations", {})
            found.append(
                PendingTask(
                    since,
                    reservations.get("NanoCPUs", 0) / 1e9,
                    reservations.get("MemoryBytes", 0),
                )
            )
        return found

    def drain_node(self, node_id: str) -> None:
        """`docker node update --availability drain`: no new task goes there."""
        with translated(f"cannot drain node {node_id[:12]}"):
            node = self._client.nodes.get(node_id)
            node.update({**node.attrs["Spec"], "Availability": "drain"})

    def label_node(self, node_id: str, labels: Mapping[str, str]) -> None:
        """`docker node update --label-add` for each of `labels`."""
        with translated(f"cannot label node {node_id[:12]}"):
            node = self._client.nodes.get(node_id)
            spec = node.attrs["Spec"]
            node.update({**spec, "Labels": {**(spec.get("Labels") or {}), **labels}})

    def remove_node(self, node_id: str) -> None:
        """`docker node rm --force`: forget a node that was shut down."""
        try:
            with translated(f"cannot remove node {node_id[:12]}"):
                self._client.api.remove_node(node_id, force=True)
        except ContainerMissing:
            pass

    def _node_status(self, node: dict[str, Any], tasks: list[dict[str, Any]]) -> NodeStatus:
        """A node as Swarm describes it, with what the tasks placed there reserve."""
        description = node.get("Description", {})
        resources = description.get("Resources", {})
        cpu_reserved, memory_reserved, jobs = 0.0, 0, 0
        for task in tasks:
            if task.get("NodeID") != node["ID"]:
                continue
            if task.get("Status", {}).get("State") not in _HOLDING:
                continue
            spec = task.get("Spec", {})
            reservations = spec.get("Resources", {}).get("Reservations", {})
            cpu_reserved += reservations.get("NanoCPUs", 0) / 1e9
            memory_reserved += reservations.get("MemoryBytes", 0)
            if spec.get("ContainerSpec", {}).get("Image") == self.agent_image:
                jobs += 1
        return NodeStatus(
            name=description.get("Hostname", node["ID"][:12]),
            cpu_cores=resources.get("NanoCPUs", 0) / 1e9,
            memory_bytes=resources.get("MemoryBytes", 0),
            cpu_reserved=cpu_reserved,
            memory_reserved=memory_reserved,
            jobs_running=jobs,
            state=node.get("Status", {}).get("State", "unknown"),
            availability=node.get("Spec", {}).get("Availability", "active"),
            labels=dict(node.get("Spec", {}).get("Labels") or {}),
            node_id=node["ID"],
            manager=node.get("Spec", {}).get("Role") == "manager",
        )

    def nodes(self) -> list[NodeStatus]:
        """Every node of the swarm as the watch last saw it, by name."""
        with self._lock:
            return sorted(self._nodes.values(), key=lambda node: node.name)

    def task_of(self, service_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._tasks.get(service_id)

    def node_of(self, task: dict[str, Any]) -> NodeStatus | None:
        with self._lock:
            return self._nodes.get(task.get("NodeID", ""))

    # -- the Runtime protocol ---------------------------------------------------------------

    def work_path(self, work_dir: Path) -> PurePosixPath:
        return WORK_MOUNT

    def prepare(self, image: str, pull: ImagePull | None = None) -> None:
        """Nothing to check here: the image is needed on the node Swarm picks, which pulls it
        (or, failing that, the attempt fails as an infrastructure failure and is retried)."""
        if not image:
            raise ImageUnavailable("no image")

    def start(self, spec: RunSpec) -> SwarmExecution:
        token = secrets.token_urlsafe(24)
        name = f"oscar-job-{spec.job_id}-{spec.attempt}"
        # The contract's variables (secrets among them) reach the script through a file in its
        # work directory, as with the docker runtime: never in a service or container config.
        environment = dict(spec.environment)
        # The agent sets RESOURCE_ID to its node's name; the manager's would be wrong.
        shown = {"RESOURCE_ID": environment.pop("RESOURCE_ID", "")}
        shown.update(
            write_environment_file(spec.work_dir / ENVIRONMENT_FILE, environment, spec.user)
        )
        labels = {
            LABEL_SERVICE: spec.service,
            LABEL_JOB: spec.job_id,
            LABEL_ATTEMPT: str(spec.attempt),
            LABEL_INSTANCE: self.instance,
        }
        self.staging.attempts[token] = _Attempt(
            work_dir=spec.work_dir,
            spec={
                "name": name,
                "image": spec.image,
                "command": script_command(spec.script),
                "environment": shown,
                "user": spec.user,
                "labels": labels,
                "pull": _node_pull(spec.image, spec.pull),
                "host_config": self._client.api.create_host_config(
                    **restricted_options(spec.limits, network=spec.network)
                ),
            },
        )
        reservations: dict[str, Any] = {}
        if spec.limits.cpu_cores:
            reservations["cpu_reservation"] = int(spec.limits.cpu_cores * 1e9)
        if spec.limits.memory_bytes:
            reservations["mem_reservation"] = spec.limits.memory_bytes
        self.remove_service(name)  # left by a crash between its creation and the ledger
        try:
            with translated("cannot create the Swarm service"):
                service = self._client.services.create(
                    self.agent_image,
                    name=name,
                    labels={**labels, LABEL_TOKEN: token, LABEL_WORK_DIR: str(spec.work_dir)},
                    mode=docker.types.ServiceMode("replicated-job", concurrency=1, replicas=1),
                    restart_policy=docker.types.RestartPolicy(condition="none"),
                    # The agent talks only to the manager and the node's socket: no network of its
                    # own to set up (it has the node's Docker socket, so this grants nothing more).
                    networks=["host"],
                    resources=docker.types.Resources(**reservations),
                    constraints=list(spec.constraints) or None,
                    env=[
                        f"OSCAR_STAGING_URL={self.staging_url}/a/{token}",
                        f"OSCAR_NODE_WORK={self.node_work}",
                        # A Swarm template: the agent learns the name of the node it runs on.
                        "OSCAR_NODE={{.Node.Hostname}}",
                    ],
                    mounts=[
                        docker.types.Mount("/var/run/docker.sock", self.node_socket, type="bind"),
                        docker.types.Mount(self.node_work, self.node_work, type="bind"),
                    ],
                )
        except (ContainerError, RuntimeUnavailable):
            self.staging.attempts.pop(token, None)
            raise
        return SwarmExecution(self, str(service.id), token)

    def _services(self, job_id: str | None = None, attempt: int | None = None) -> list[Any]:
        labels = [f"{LABEL_INSTANCE}={self.instance}"]
        if job_id is not None:
            labels.append(f"{LABEL_JOB}={job_id}")
        if attempt is not None:
            labels.append(f"{LABEL_ATTEMPT}={attempt}")
        with translated("cannot list Swarm services"):
            return list(self._client.services.list(filters={"label": labels}))

    def remove_service(self, service: str) -> None:
        """Remove an attempt's service by id or name (its task's agent ends the script)."""
        try:
            with translated(f"cannot remove service {service[:40]}"):
                self._client.api.remove_service(service)
        except ContainerMissing:
            pass

    @property
    def _client(self) -> Any:
        return self.connection.client

    def find(self, job_id: str, attempt: int) -> SwarmExecution | None:
        services = self._services(job_id, attempt)
        if not services:
            return None
        labels = services[0].attrs.get("Spec", {}).get("Labels", {})
        token, work_dir = labels.get(LABEL_TOKEN), labels.get(LABEL_WORK_DIR)
        if not token or not work_dir:
            self.remove_service(services[0].id)
            return None
        # The agent keeps offering its result until a manager takes it.
        self.staging.attempts.setdefault(token, _Attempt(work_dir=Path(work_dir), spec={}))
        return SwarmExecution(self, str(services[0].id), token)

    def job_ids(self) -> set[str]:
        found = set()
        for service in self._services():
            job = service.attrs.get("Spec", {}).get("Labels", {}).get(LABEL_JOB)
            if job:
                found.add(job)
        return found

    def remove_job(self, job_id: str) -> None:
        for service in self._services(job_id):
            self.remove_service(service.id)

    def close(self) -> None:
        self._stop.set()
        self.staging.close()
        self.connection.close()


if TYPE_CHECKING:

    def _fits_protocol(runtime: SwarmRuntime) -> Runtime:
        return runtime

    def _fits_cluster(runtime: SwarmRuntime) -> ClusterRuntime:
        return runtime

    def _fits_scaler(runtime: SwarmRuntime) -> ScalableCluster:
        return runtime
