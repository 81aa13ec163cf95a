"""The `Runtime` contract, held by both runtimes: docker (real engine) and process (host)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from oscarpy.engine.errors import ImageUnavailable
from oscarpy.engine.runtimes.base import EndReason, Limits, RunResult, RunSpec, Runtime
from oscarpy.engine.runtimes.docker import DockerRuntime
from oscarpy.engine.runtimes.process import ProcessRuntime
from tests.support.jobs import IMAGE

CONTRACT_LIMITS = Limits(cpu_cores=0.5, memory_bytes=64 * 2**20)


@pytest.fixture(params=["docker", "process"])
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    if request.param == "docker":
        request.getfixturevalue("docker_client")
        chosen: Runtime = DockerRuntime(f"test-{uuid.uuid4().hex[:8]}")
    else:
        chosen = ProcessRuntime()
    yield chosen
    chosen.close()


def run(
    runtime: Runtime,
    work: Path,
    script: str,
    timeout: float | None = None,
    limits: Limits = CONTRACT_LIMITS,
) -> tuple[RunResult, bytes]:
    work.mkdir(exist_ok=True)
    (work / "script.sh").write_text(script)
    spec = RunSpec(
        job_id=uuid.uuid4().hex,
        service="contract",
        attempt=1,
        image=IMAGE,
        work_dir=work,
        script="script.sh",
        environment={"GREETING": "hello"},
        limits=limits,
    )
    runtime.prepare(IMAGE)
    execution = runtime.start(spec)
    output: list[bytes] = []
    try:
        result = execution.wait(timeout, output.append)
    finally:
        execution.remove()
    return result, b"".join(output)


def test_output_is_streamed_and_the_environment_is_passed(runtime: Runtime, tmp_path: Path) -> None:
    mount = runtime.work_path(tmp_path / "w")
    result, output = run(
        runtime, tmp_path / "w", f'echo "$GREETING"\necho oops >&2\necho done > {mount}/marker\n'
    )

    assert result.succeeded
    assert b"hello\n" in output and b"oops\n" in output
    assert (tmp_path / "w" / "marker").read_text() == "done\n"


def test_the_exit_status_decides(runtime: Runtime, tmp_path: Path) -> None:
    result, _ = run(runtime, tmp_path / "w", "exit 7\n")

    assert result.reason is EndReason.EXIT and result.exit_code == 7


def test_a_timeout_kills_the_script(runtime: Runtime, tmp_path: Path) -> None:
    started = time.monotonic()
    result, output = run(runtime, tmp_path / "w", "echo begin\nsleep 30\n", timeout=1)

    assert result.reason is EndReason.TIMEOUT
    assert time.monotonic() - started < 10
    assert b"begin" in output


def test_no_file_grows_past_the_disk_limit(runtime: Runtime, tmp_path: Path) -> None:
    limits = replace(CONTRACT_LIMITS, disk_bytes=2**20)
    mount = runtime.work_path(tmp_path / "w")
    script = f'head -c 3000000 /dev/zero > {mount}/big\necho "head: $?"\n'

    result, output = run(runtime, tmp_path / "w", script, limits=limits)

    assert result.succeeded  # the script goes on: the guard, not the runtime, ends it
    assert b"head: 153" in output  # 128 + SIGXFSZ
    assert (tmp_path / "w" / "big").stat().st_size == 2**20


def test_docker_shows_where_a_container_writes_outside_its_work_directory(
    tmp_path: Path, docker_client: object
) -> None:
    runtime = DockerRuntime(f"test-{uuid.uuid4().hex[:8]}")
    work = tmp_path / "w"
    work.mkdir()
    (work / "script.sh").write_text("echo hidden > /scratch.txt\n")
    spec = RunSpec("layer", "contract", 1, IMAGE, work, "script.sh", limits=CONTRACT_LIMITS)
    execution = runtime.start(spec)
    try:
        assert execution.wait(30, lambda chunk: None).succeeded
        layer = execution.writable_layer()
        # Where the supervisor measures it (the server runs as root on the Docker host here).
        assert layer is not None and (layer / "scratch.txt").read_text() == "hidden\n"
    finally:
        execution.remove()
        runtime.close()


def test_docker_lists_its_containers_while_one_is_being_removed(
    tmp_path: Path, docker_client: Any
) -> None:
    """A job ending while the engine lists containers (the sweep at start) must not make the
    listing fail: that left a finished job's container behind after a kill -9."""
    runtime = DockerRuntime(f"test-{uuid.uuid4().hex[:8]}")
    executions = []
    for job in ("vanishing", "staying"):
        work = tmp_path / job
        work.mkdir()
        (work / "script.sh").write_text("true\n")
        spec = RunSpec(job, "contract", 1, IMAGE, work, "script.sh", limits=CONTRACT_LIMITS)
        executions.append(runtime.start(spec))
    vanishing = executions[0].id
    api = runtime._client.api
    inspect = api.inspect_container

    def removed_first(container: str) -> Any:
        if container == vanishing:
            docker_client.api.remove_container(container, force=True)
        return inspect(container)

    api.inspect_container = removed_first
    try:
        assert runtime.job_ids() == {"staying"}
    finally:
        api.inspect_container = inspect
        for execution in executions:
            execution.remove()
        runtime.close()


def test_docker_starts_a_script_in_three_engine_calls_and_removes_it_off_the_job_thread(
    tmp_path: Path, docker_client: Any
) -> None:
    """What a fresh-container job waits for before its script runs is create, attach, start:
    docker-py's `create` and `attach` each inspected the container too (two more round trips),
    and the removal held the job's thread, and so its slot, until the daemon was done. (The
    service's first job also makes the network holder its later jobs join.)"""
    runtime = DockerRuntime(f"test-{uuid.uuid4().hex[:8]}")
    runtime.prepare(IMAGE)
    runtime.connection.remapped_root()  # looked up once per process (`docker info`)
    calls: list[tuple[str, str, str]] = []
    api = runtime.connection.api  # a requests.Session: every Engine API call goes through send
    send = api.send

    def recorded(request: Any, **options: Any) -> Any:
        path = re.sub(r"^/v[\d.]+/", "", urlsplit(request.url).path)
        calls.append((threading.current_thread().name, request.method, path))
        return send(request, **options)

    def job(attempt: int) -> Any:
        work = tmp_path / f"w{attempt}"
        work.mkdir()
        (work / "script.sh").write_text("echo ran\n")
        spec = RunSpec(
            "calls", "contract", attempt, IMAGE, work, "script.sh", limits=CONTRACT_LIMITS
        )
        return runtime.start(spec)

    first = job(1)
    first.wait(30, lambda _: None)
    first.remove()
    api.send = recorded
    execution = job(2)
    try:
        anonymous = [
            (method, path.replace(execution.id, ""))
            for thread, method, path in calls
            if thread == threading.current_thread().name  # not the first job's removal
        ]
        assert anonymous == [
            ("POST", "containers/create"),
            ("POST", "containers//attach"),
            ("POST", "containers//start"),
        ]
        output: list[bytes] = []
        assert execution.wait(30, output.append).succeeded
        assert b"".join(output) == b"ran\n"
        assert execution.writable_layer() is not None  # looked up while the script runs
    finally:
        execution.remove()
        runtime.close()  # waits for the removals
    removals = [
        thread for thread, method, path in calls if method == "DELETE" and execution.id in path
    ]
    assert removals == ["docker-remover"]
    assert docker_client.containers.list(all=True, filters={"id": execution.id}) == []


def test_docker_refuses_a_missing_image_clearly(docker_client: object) -> None:
    runtime = DockerRuntime("test-missing")
    with pytest.raises(ImageUnavailable, match="oscar-test/none:0 is not on this host"):
        runtime.prepare("oscar-test/none:0")
    runtime.close()


def test_docker_containers_have_no_extra_privileges(tmp_path: Path, docker_client: object) -> None:
    runtime = DockerRuntime(f"test-{uuid.uuid4().hex[:8]}")
    try:
        result, output = run(
            runtime, tmp_path / "w", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status\n"
        )
    finally:
        runtime.close()
    lines = dict(line.split(":\t") for line in output.decode().splitlines())
    assert lines["NoNewPrivs"] == "1"
    capabilities = int(lines["CapEff"], 16)
    assert capabilities & (1 << 13) == 0  # CAP_NET_RAW dropped
    assert capabilities & (1 << 21) == 0  # CAP_SYS_ADMIN never granted


def test_the_process_runtime_runs_jobs_end_to_end(tmp_path: Path) -> None:
    from oscarpy.engine.records import JobStatus
    from tests.support.jobs import running_engine

    with running_engine(tmp_path / "data", runtime=ProcessRuntime()) as platform:
        service = platform.service(
            script='tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/upper.txt"\n',
            input=[{"path": "proc/in"}],
            output=[{"path": "proc/out"}],
        )
        platform.put("proc", "in/a.txt", b"shout\n")

        assert platform.object_appears("proc", "out/upper.txt") == b"SHOUT\n"
        (job,) = platform.finished_jobs(service.name)
        assert job.status is JobStatus.SUCCEEDED


def test_serve_with_the_process_runtime_warns_at_start(tmp_path: Path) -> None:
    from tests.support.server import start_server

    server = start_server(tmp_path / "data", args=["--runtime", "process"])
    try:
        assert "runtime 'process': job scripts run on this host" in server.log()
    finally:
        server.stop()
