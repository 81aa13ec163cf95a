"""Fresh job containers join the network namespace of a holder instead of making their own
(`engine/runtimes/network_holders.py`): a job must find nothing of the previous job there,
concurrent jobs must not share one, and holders must not outlive their use."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest

from oscarpy.engine.records import JobStatus
from oscarpy.engine.runtimes.base import Limits, RunSpec
from oscarpy.engine.runtimes.docker import DockerExecution, DockerRuntime
from oscarpy.engine.runtimes.network_holders import LABEL_NETWORK_OF
from tests.support.inprocess import in_process_server
from tests.support.jobs import IMAGE

LIMITS = Limits(cpu_cores=0.5, memory_bytes=64 * 2**20)
PORT_7000_LISTENERS = "cat /proc/net/tcp /proc/net/tcp6 | grep -c ':1B58 0*:0000 0A'"
"""How many sockets of the namespace listen on port 7000 (0x1B58)."""


@pytest.fixture
def runtime(docker_client: Any) -> Iterator[DockerRuntime]:
    chosen = DockerRuntime(f"test-{uuid.uuid4().hex[:8]}", owner="test-owner")
    chosen.prepare(IMAGE)
    yield chosen
    chosen.close()


def holders(docker_client: Any, runtime: DockerRuntime) -> list[Any]:
    return list(
        docker_client.containers.list(
            all=True,
            filters={"label": [f"oscar.instance={runtime.instance}", "oscar.role=network"]},
        )
    )


def start(runtime: DockerRuntime, work: Path, script: str, network: str = "default") -> Any:
    work.mkdir()
    (work / "script.sh").write_text(script)
    spec = RunSpec(
        uuid.uuid4().hex, "svc", 1, IMAGE, work, "script.sh", limits=LIMITS, network=network
    )
    return runtime.start(spec)


def finish(execution: DockerExecution) -> tuple[str, str]:
    """The execution's output, and the network namespace it ran in."""
    output: list[bytes] = []
    result = execution.wait(60, output.append)
    mode = docker.from_env().api.inspect_container(execution.id)["HostConfig"]
    execution.remove()
    assert result.succeeded, (result, output)
    return b"".join(output).decode(), str(mode["NetworkMode"])


def test_the_next_job_finds_nothing_of_the_previous_one_in_their_namespace(
    runtime: DockerRuntime, tmp_path: Path, docker_client: Any
) -> None:
    """The first job, as root, leaves a listener behind and tries to add a host name; the
    second job, lent the same holder, finds neither."""
    planted, first_mode = finish(
        start(
            runtime,
            tmp_path / "a",
            "nc -l -p 7000 </dev/null >/dev/null 2>&1 &\n"
            "sleep 0.3\n"
            f"{PORT_7000_LISTENERS}\n"
            "(echo '10.9.9.9 planted.example' >> /etc/hosts) 2>/dev/null || echo refused\n",
        )
    )
    assert planted.split() == ["1", "refused"], planted  # listening; /etc/hosts read-only
    found, second_mode = finish(
        start(
            runtime,
            tmp_path / "b",
            f"{PORT_7000_LISTENERS} || true\ngrep -c planted /etc/hosts || true\n",
        )
    )
    assert second_mode == first_mode and first_mode.startswith("container:")
    assert found.split() == ["0", "0"], found
    assert len(holders(docker_client, runtime)) == 1


def test_concurrent_jobs_get_namespaces_of_their_own(
    runtime: DockerRuntime, tmp_path: Path, docker_client: Any
) -> None:
    """Two jobs of one service that listen on the same fixed port at once both succeed, each
    seeing only its own listener."""
    script = (
        f"nc -l -p 7000 </dev/null >/dev/null 2>&1 &\nsleep 1\n{PORT_7000_LISTENERS}\nkill %1\n"
    )
    executions = [start(runtime, tmp_path / name, script) for name in ("a", "b")]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(finish, executions))
    assert [output.split() for output, _ in results] == [["1"], ["1"]], results
    assert results[0][1] != results[1][1]
    assert len(holders(docker_client, runtime)) == 2  # both kept for the next jobs


def test_a_service_without_network_gets_a_holder_without_network(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    output, mode = finish(start(runtime, tmp_path / "a", "cat /proc/net/dev\n", network="none"))
    interfaces = {line.split(":")[0].strip() for line in output.splitlines() if ":" in line}
    assert interfaces == {"lo"}, output
    assert mode.startswith("container:")


def test_a_job_whose_holder_was_removed_by_hand_still_runs(
    runtime: DockerRuntime, tmp_path: Path, docker_client: Any
) -> None:
    _, first_mode = finish(start(runtime, tmp_path / "a", "true\n"))
    docker_client.containers.get(first_mode.removeprefix("container:")).remove(force=True)
    output, second_mode = finish(start(runtime, tmp_path / "b", "echo ran\n"))
    assert output == "ran\n"
    assert second_mode != first_mode


def test_holders_go_with_the_runtime_and_with_a_dead_owner(
    tmp_path: Path, docker_client: Any
) -> None:
    instance = f"test-{uuid.uuid4().hex[:8]}"
    dead = DockerRuntime(instance, owner="dead-process")
    dead.prepare(IMAGE)
    finish(start(dead, tmp_path / "a", "true\n"))
    survivor = DockerRuntime(instance, owner="live-process")
    try:
        finish(start(survivor, tmp_path / "b", "true\n"))
        found = holders(docker_client, survivor)
        assert sorted(c.labels["oscar.owner"] for c in found) == ["dead-process", "live-process"]
        assert {c.labels[LABEL_NETWORK_OF] for c in found} == {"svc"}
        survivor.remove_left_by("dead-process")  # the engine's clean-up after a dead instance
        assert [c.labels["oscar.owner"] for c in holders(docker_client, survivor)] == [
            "live-process"
        ]
    finally:
        survivor.close()
        dead.networks._idle.clear()  # already removed; only its threads are left to stop
        dead.close()
    assert holders(docker_client, survivor) == []


def test_a_changed_or_deleted_service_keeps_no_holder(
    runtime: DockerRuntime, tmp_path: Path, docker_client: Any
) -> None:
    """Idle holders go at once, and the holder of a job still running goes when it ends, not
    back to the pool: none keeps the service's old image in use for `docker rmi`."""
    running = start(runtime, tmp_path / "a", "sleep 2\n")
    finish(start(runtime, tmp_path / "b", "true\n"))  # its holder is idle, the other lent
    assert len(holders(docker_client, runtime)) == 2
    (idle,) = [holder for pool in runtime.networks._idle.values() for holder in pool]

    runtime.forget_service("svc")
    remaining = {holder.id for holder in holders(docker_client, runtime)}
    assert remaining and idle.id not in remaining
    finish(running)
    assert holders(docker_client, runtime) == []
    # The service as it is now gets holders again.
    finish(start(runtime, tmp_path / "c", "true\n"))
    assert len(holders(docker_client, runtime)) == 1


def test_deleting_a_service_removes_its_holders(docker_client: Any, tmp_path: Path) -> None:
    with in_process_server(tmp_path / "data") as server:
        definition = {
            "name": "held",
            "image": IMAGE,
            "script": "true\n",
            "cpu": "0.1",
            "memory": "16Mi",
            "input": [{"path": "held/in"}],
        }
        with server.client() as client:
            assert client.post("/system/services", json=definition).status_code == 201
        store = server.platform.store
        store.put_bytes("held", "in/1", b"one")
        ledger = server.platform.engine.ledger
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = ledger.page("held", 0, 10)[0]
            if jobs and jobs[0].status is JobStatus.SUCCEEDED:
                break
            time.sleep(0.05)
        of_service = {"label": [f"{LABEL_NETWORK_OF}=held", "oscar.role=network"]}
        assert docker_client.containers.list(all=True, filters=of_service) != []

        with server.client() as client:
            assert client.delete("/system/services/held").status_code == 204
        deadline = time.monotonic() + 10  # it was 2 minutes (the idle holders' expiry)
        while docker_client.containers.list(all=True, filters=of_service):
            assert time.monotonic() < deadline, "the deleted service's holders are still there"
            time.sleep(0.1)
