"""An in-process platform for job tests: real state DB, real object store, real registry, the
real engine on the real Docker Engine (or the process runtime), and the API app in process."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from oscarpy.api.app import create_app
from oscarpy.auth.credentials import AdminCredentials
from oscarpy.config import Settings
from oscarpy.db import Database
from oscarpy.engine import Engine
from oscarpy.engine.ledger import JobView
from oscarpy.engine.records import JobStatus
from oscarpy.engine.runtimes.base import Runtime
from oscarpy.instances import Instances
from oscarpy.s3.app import create_s3_app
from oscarpy.services.model import Service, parse_service
from oscarpy.services.registry import ServiceRegistry
from oscarpy.storage.store import ObjectStore
from oscarpy.web.router import mount_dashboard
from tests.support.server import free_port

IMAGE = "oscar-test/busybox:latest"
ADMIN = AdminCredentials("oscar", "test-password-123", generated=False)
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{int(time.time() * 1000) % 100000}-{next(_names)}"


@dataclass
class Harness:
    settings: Settings
    database: Database
    store: ObjectStore
    registry: ServiceRegistry
    engine: Engine
    client: httpx.Client
    s3_url: str
    """The S3 front-end of the same store, to play an external `minio.<id>` provider."""

    def service(self, **fields: Any) -> Service:
        """Register a service; `name` defaults to a unique one, `image` to the test image."""
        fields.setdefault("name", unique("svc"))
        fields.setdefault("image", IMAGE)
        fields.setdefault("memory", "64Mi")
        fields.setdefault("cpu", "0.25")
        return self.registry.create(parse_service(fields))

    def in_out_service(self, script: str, prefix: str = "io", **fields: Any) -> tuple[str, str]:
        """A service of `script` reading `<bucket>/in` and writing `<bucket>/out` of a bucket of
        its own: (service name, bucket)."""
        bucket = unique(prefix)
        service = self.service(
            script=script,
            input=[{"path": f"{bucket}/in"}],
            output=[{"path": f"{bucket}/out"}],
            **fields,
        )
        return service.name, bucket

    def put(self, bucket: str, key: str, data: bytes) -> str:
        self.store.ensure_bucket(bucket)
        return self.store.put_bytes(bucket, key, data).etag

    def read(self, bucket: str, key: str) -> bytes | None:
        if self.store.head(bucket, key) is None:
            return None
        return self.store.blob_path(bucket, key).read_bytes()

    def wait_for(self, condition: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")

    def jobs(self, service: str) -> list[JobView]:
        return self.engine.ledger.page(service, 0, 10_000)[0]

    def finished_jobs(self, service: str, count: int = 1, timeout: float = 30) -> list[JobView]:
        def done() -> list[JobView] | None:
            jobs = self.jobs(service)
            finished = [job for job in jobs if job.status in FINAL]
            return finished if len(finished) >= count else None

        result: list[JobView] = self.wait_for(done, timeout, f"{count} finished job(s)")
        return result

    def docker_containers(self, job_id: str) -> list[str]:
        """Ids of the containers of a job that still exist."""
        return self._containers(f"oscar.job={job_id}")

    def docker_containers_of(self, service: str) -> list[str]:
        return self._containers(f"oscar.service={service}")

    def _containers(self, label: str) -> list[str]:
        import docker

        client = docker.from_env()
        try:
            found = client.containers.list(
                all=True,
                filters={"label": [label, f"oscar.instance={self.engine.instance}"]},
                ignore_removed=True,  # a job that ends meanwhile
            )
            return [container.id for container in found]
        finally:
            client.close()

    def object_appears(self, bucket: str, key: str, timeout: float = 30) -> bytes:
        result: bytes = self.wait_for(lambda: self.read(bucket, key), timeout, f"{bucket}/{key}")
        return result


@contextmanager
def running_engine(
    data_dir: Path,
    database_url: str | None = None,
    runtime: Runtime | None = None,
    **settings: Any,
) -> Iterator[Harness]:
    settings.setdefault("job_retry_backoff", 0.01)
    settings.setdefault("job_retry_limit", 1)
    config = Settings(data_dir=data_dir, database_url=database_url, **settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(config.state_database_url)
    database.migrate()
    store = ObjectStore(database, data_dir)
    registry = ServiceRegistry(database, store)
    # The instance's own lease is at least 30 s whatever the job lease: a heartbeat that a
    # loaded machine delays past a short lease would end the test process (`os._exit`).
    instances = Instances(database, max(30.0, config.job_lease_seconds))
    instances.start()
    engine = Engine(config, database, store, registry, runtime=runtime, instances=instances)
    app = create_app(config, database, ADMIN)
    mount_dashboard(app, ADMIN)  # as server.py does
    app.state.store = store
    app.state.registry = registry
    app.state.engine = engine
    engine.start()
    port, s3_port = free_port(), free_port()
    servers = [
        uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)),
        uvicorn.Server(
            uvicorn.Config(
                create_s3_app(store, ADMIN, config),
                host="127.0.0.1",
                port=s3_port,
                log_config=None,
            )
        ),
    ]
    threads = [threading.Thread(target=server.run, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while not all(server.started for server in servers) and time.monotonic() < deadline:
            time.sleep(0.02)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", auth=(ADMIN.username, ADMIN.password), timeout=30
        ) as client:
            yield Harness(
                config, database, store, registry, engine, client, f"http://127.0.0.1:{s3_port}"
            )
    finally:
        for server in servers:
            server.should_exit = True
        for thread in threads:
            thread.join(10)
        engine.stop()
        instances.stop()
        database.close()
    leftovers = _remove_containers(engine.instance)
    assert not leftovers, f"containers left behind by the engine: {leftovers}"


def _remove_containers(instance: str) -> list[str]:
    """Remove (and name) the containers this test installation left, if any."""
    import docker

    try:
        client = docker.from_env()
        found = client.containers.list(all=True, filters={"label": f"oscar.instance={instance}"})
    except docker.errors.DockerException:
        return []  # the process runtime, on a machine without Docker
    names = [container.name for container in found]
    for container in found:
        container.remove(force=True)
    client.close()
    return names


class HealthProbe:
    """Calls `/health` in a loop on a thread and records the slowest answer."""

    def __init__(self, platform: Harness) -> None:
        self.platform = platform
        self.slowest = 0.0
        self.calls = 0
        self.failure: httpx.HTTPError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = self.platform.client.get("/health")
            except httpx.HTTPError as error:  # reported by __exit__, in the test's own thread
                self.failure = error
                return
            assert answer.text == "Ok"
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.calls += 1
            time.sleep(0.1)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.failure is not None:
            raise AssertionError(f"/health did not answer: {self.failure!r}") from self.failure
