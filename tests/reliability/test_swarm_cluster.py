"""Cluster mode on a real 3-node Docker Swarm (private daemons in network namespaces, see
`tests/support/swarm.py`): jobs spread over the nodes, and a node that dies mid-batch costs
attempts, never files."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oscarpy.engine.runtimes.swarm_image import entrypoint
from tests.support.server import RunningServer, free_port, start_server
from tests.support.swarm import NODE_RUN, Swarm, local_registry, start_swarm

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "oscar-test/busybox:latest"
AGENT_IMAGE = "oscar-py/supervisor:test"
#: The issue's figure; OSCAR_TEST_SWARM_FILES lowers it for a quick run.
FILES = int(os.environ.get("OSCAR_TEST_SWARM_FILES", "60"))
SLEEP = 2
#: Copies the input and records when the sleep ran (/proc/uptime: one clock, as all the test
#: nodes share this machine's kernel).
SCRIPT = f"""read started _ < /proc/uptime
sleep {SLEEP}
read ended _ < /proc/uptime
name=$(basename "$INPUT_FILE_PATH")
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$name"
echo "$started $ended" > "$TMP_OUTPUT_DIR/$name.times"
"""
DYING_FILES = max(FILES * 3 // 10, 12)
#: An image no node has, from a registry that refuses at once (no registry runs here).
ABSENT = "127.0.0.1:9/oscar-test/absent:1"
NODE_LINE = re.compile(r"oscar: attempt runs on node (\S+)")


@pytest.fixture(scope="module")
def swarm() -> Iterator[Swarm]:
    if not usable():
        pytest.skip("needs root with dockerd, nsenter, unshare, ip and iptables")
    root = Path(tempfile.mkdtemp(prefix="oscar-swarm-"))
    started = time.monotonic()
    cluster = start_swarm(3, root)
    try:
        print(f"3-node swarm up in {time.monotonic() - started:.1f} s")
        install_images(cluster)
        yield cluster
    finally:
        cluster.stop()


def install_images(cluster: Swarm) -> None:
    """The test image and the supervisor image (built offline) on every node."""
    cluster.load_image(IMAGE)
    rootfs = subprocess.run(
        [sys.executable, "-m", "oscarpy.engine.runtimes.swarm_image"],
        capture_output=True,
        check=True,
    ).stdout
    change = "ENTRYPOINT " + str(entrypoint()).replace("'", '"')
    for node in cluster.nodes:
        node.docker("import", "--change", change, "-", AGENT_IMAGE, stdin=rootfs)


def usable() -> bool:
    return all(shutil.which(tool) for tool in ("dockerd", "nsenter", "unshare", "ip", "iptables"))


def serve_on(
    swarm: Swarm,
    data: Path,
    staging_port: int = 0,
    extra: dict[str, str] | None = None,
    **options: Any,
) -> RunningServer:
    options.setdefault("wait", 90)  # a loaded machine starts it slowly
    return start_server(
        data,
        **options,
        env={
            "OSCAR_PASSWORD": "swarm-pw",
            "DOCKER_HOST": swarm.manager.docker_host,
            "OSCAR_RUNTIME": "swarm",
            "OSCAR_SWARM_STAGING": f"{swarm.host_address}:{staging_port or free_port()}",
            "OSCAR_SWARM_AGENT_IMAGE": AGENT_IMAGE,
            "OSCAR_SWARM_NODE_WORK": f"{NODE_RUN}/work",
            "OSCAR_SWARM_NODE_SOCKET": f"{NODE_RUN}/docker.sock",
            # What the engine hands to Swarm at once: the cluster's CPUs (3 nodes x 2).
            "OSCAR_JOB_CPU": "6",
            "OSCAR_JOB_RETRY_BACKOFF": "0.05",
            **(extra or {}),
        },
    )


def _upload_batch(server: RunningServer, service: str, files: int) -> None:
    server.create_service(
        {
            "name": service,
            "image": IMAGE,
            "script": SCRIPT,
            "cpu": "1",
            "memory": "32Mi",
            # The test image is in no registry: no `Always` pull (its tag is `latest`).
            "image_pull_policy": "IfNotPresent",
            "input": [{"path": f"{service}/in"}],
            "output": [{"path": f"{service}/out"}],
        }
    )
    s3 = server.s3_client()
    for index in range(files):
        s3.put_object(Bucket=service, Key=f"in/{index:02}.txt", Body=f"file {index}\n".encode())


def _wait_all_succeeded(server: RunningServer, service: str, files: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    statuses: list[str] = []
    while time.monotonic() < deadline:
        with server.client() as client:
            jobs = client.get(f"/system/logs/{service}", params={"limit": 1000}).json()["jobs"]
        statuses = [job["status"] for job in jobs.values()]
        if len(statuses) >= files and set(statuses) == {"Succeeded"}:
            return
        time.sleep(0.5)
    raise AssertionError(f"not all jobs succeeded: {sorted(statuses)}")


def _outputs_are_right(
    server: RunningServer, service: str, files: int
) -> list[tuple[float, float]]:
    """Check every output; return when each script slept (start, end)."""
    s3 = server.s3_client()
    spans = []
    for index in range(files):
        body = s3.get_object(Bucket=service, Key=f"out/{index:02}.txt")["Body"].read()
        assert body == f"file {index}\n".encode()
        times = s3.get_object(Bucket=service, Key=f"out/{index:02}.txt.times")["Body"].read()
        started, ended = (float(value) for value in times.split())
        spans.append((started, ended))
    return spans


def _status_while_busy(server: RunningServer) -> dict[str, Any]:
    """`/system/status` once jobs run on at least two nodes."""
    return _status_when(server, lambda nodes: sum(1 for n in nodes if n["running_jobs"]) >= 2)


def _status_when(
    server: RunningServer, wanted: Callable[[list[dict[str, Any]]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with server.client() as client:
            cluster: dict[str, Any] = client.get("/system/status").json()["cluster"]
        if wanted(cluster["nodes"]):
            return cluster
        time.sleep(0.2)
    raise AssertionError(f"/system/status never showed what was expected: {cluster}")


def _peak_concurrency(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def _records(data: Path, service: str) -> dict[str, Any]:
    database = sqlite3.connect(data / "oscar.db")
    try:
        per_key = database.execute(
            "SELECT key, count(*) FROM jobs WHERE service = ? GROUP BY key", (service,)
        ).fetchall()
        attempts = database.execute(
            "SELECT a.job_id, a.number, a.outcome, a.message, a.node FROM job_attempts a "
            "JOIN jobs j ON j.id = a.job_id WHERE j.service = ?",
            (service,),
        ).fetchall()
        logs = database.execute(
            "SELECT l.text FROM job_logs l JOIN jobs j ON j.id = l.job_id WHERE j.service = ?",
            (service,),
        ).fetchall()
    finally:
        database.close()
    nodes = [match for (text,) in logs for match in NODE_LINE.findall(text)]
    adopted = sum(text.count("adopted execution") for (text,) in logs)
    return {"per_key": per_key, "attempts": attempts, "nodes": nodes, "adopted": adopted}


def _no_services_left(swarm: Swarm) -> None:
    client = swarm.manager.client()
    deadline = time.monotonic() + 20
    while client.services.list() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert client.services.list() == []


def test_jobs_spread_over_three_nodes_and_run_in_parallel(swarm: Swarm, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = serve_on(swarm, data)
    try:
        started = time.monotonic()
        _upload_batch(server, "spread", FILES)
        busy = _status_while_busy(server)
        _wait_all_succeeded(server, "spread", FILES, timeout=150)
        elapsed = time.monotonic() - started
        spans = _outputs_are_right(server, "spread", FILES)
        with server.client() as client:
            jobs = client.get("/system/logs/spread", params={"limit": 1000}).json()["jobs"]
            metrics = client.get("/metrics").text
        # Back to idle once the last tasks have exited (they end just after their report).
        idle = _status_when(server, lambda nodes: not any(n["running_jobs"] for n in nodes))
    finally:
        server.stop()
    records = _records(data, "spread")
    assert {count for _, count in records["per_key"]} == {1} and len(records["per_key"]) == FILES
    assert {node.hostname for node in swarm.nodes} == set(records["nodes"])
    # Each job record names the node of its attempt, as the log line does.
    assert {job["node"] for job in jobs.values()} == {node.hostname for node in swarm.nodes}
    assert all(job["nodes"] == [job["node"]] for job in jobs.values())
    # /system/status shows every node: while busy, what the running jobs reserve on each.
    names = {node.hostname for node in swarm.nodes}
    assert {node["name"] for node in busy["nodes"]} == names and busy["nodes_count"] == 3
    for node in busy["nodes"]:
        assert node["cpu"]["capacity_cores"] == 2000
        assert node["cpu"]["reserved_cores"] == 1000 * node["running_jobs"]
        assert node["cpu"]["free_cores"] == 2000 - node["cpu"]["reserved_cores"]
    assert sum(node["running_jobs"] for node in busy["nodes"]) >= 2
    assert idle["metrics"]["cpu"]["total_free_cores"] == 6000
    for name in names:
        assert f'oscar_node_cpu_cores{{node="{name}"}} 2.0' in metrics
        assert f'oscar_node_ready{{node="{name}"}} 1.0' in metrics
    # One node (2 CPUs, `cpu: 1` each) runs 2 at a time; 3 nodes run up to 6.
    peak = _peak_concurrency(spans)
    print(
        f"{FILES} jobs of `sleep {SLEEP}` with cpu 1 on 3 nodes of 2 CPUs: {elapsed:.1f} s, "
        f"up to {peak} scripts at once ({FILES / elapsed:.2f} jobs/s)"
    )
    assert 4 <= peak <= 6
    _no_services_left(swarm)


def test_failures_read_as_in_local_mode(swarm: Swarm, tmp_path: Path) -> None:
    """A script's exit code and an image no node has are reported as the docker runtime does."""
    server = serve_on(swarm, tmp_path / "data", extra={"OSCAR_JOB_RETRY_LIMIT": "1"})
    try:
        server.create_service(
            {"name": "exits", "image": IMAGE, "script": "echo failing\nexit 3\n",
             "input": [{"path": "exits/in"}]}
        )  # fmt: skip
        server.create_service(
            {"name": "absent", "image": ABSENT, "script": "true\n",
             "input": [{"path": "absent/in"}]}
        )  # fmt: skip
        s3 = server.s3_client()
        s3.put_object(Bucket="exits", Key="in/a.txt", Body=b"a")
        s3.put_object(Bucket="absent", Key="in/a.txt", Body=b"a")
        exits = _finished_job(server, "exits")
        absent = _finished_job(server, "absent")
        with server.client() as client:
            log = client.get(f"/system/logs/exits/{exits['id']}").text
    finally:
        server.stop()
    assert (exits["status"], exits["exit_code"], exits["reason"]) == ("Failed", 3, "exit")
    assert "failing" in log and "oscar: attempt runs on node" in log
    assert (absent["status"], absent["reason"], absent["attempts"]) == ("Failed", "image", 2)
    assert ABSENT in absent["message"] and "on node" in absent["message"]


def test_placement_constraints_and_enable_gpu_choose_the_nodes(
    swarm: Swarm, tmp_path: Path
) -> None:
    zoned, gpu = swarm.workers
    swarm.manager.docker("node", "update", "--label-add", "zone=b", zoned.hostname)
    swarm.manager.docker("node", "update", "--label-add", "gpu=true", gpu.hostname)
    server = serve_on(swarm, tmp_path / "data")
    try:
        for name, extra in (
            ("zoned", {"placement": ["node.labels.zone==b"]}),
            ("gpu", {"enable_gpu": True}),
        ):
            server.create_service(
                {"name": name, "image": IMAGE, "script": "true\n", "cpu": "0.1",
                 "input": [{"path": f"{name}/in"}], **extra}
            )  # fmt: skip
            for index in range(4):
                server.s3_client().put_object(Bucket=name, Key=f"in/{index}", Body=b"x")
        for name in ("zoned", "gpu"):
            _wait_all_succeeded(server, name, 4, timeout=90)
        with server.client() as client:
            ran_on = {
                name: {
                    job["node"]
                    for job in client.get(f"/system/logs/{name}").json()["jobs"].values()
                }
                for name in ("zoned", "gpu")
            }
    finally:
        server.stop()
        swarm.manager.docker("node", "update", "--label-rm", "zone", zoned.hostname)
        swarm.manager.docker("node", "update", "--label-rm", "gpu", gpu.hostname)
    assert ran_on == {"zoned": {zoned.hostname}, "gpu": {gpu.hostname}}


def test_images_reach_the_nodes_through_a_registry(swarm: Swarm, tmp_path: Path) -> None:
    """The service's image is only in a registry (Debian's docker-registry here): every node
    that runs a job pulls it from there, with the service's pull policy and registry login
    (`Always`: pulled on the node; the password in no service definition and no log), and an
    image a `Never` service's node lacks fails the job with reason `image`, naming the node."""
    with local_registry(swarm) as registry:
        image = f"{registry}/oscar-test/pulled:1"
        never = f"{registry}/oscar-test/never-pulled:1"
        for name in (image, never):
            swarm.manager.docker("tag", IMAGE, name)
            swarm.manager.docker("push", "-q", name)
            swarm.manager.docker("rmi", name)  # the registry has the only copy now
        server = serve_on(swarm, tmp_path / "data", extra={"OSCAR_JOB_RETRY_LIMIT": "1"})
        try:
            server.create_service(
                {"name": "pulled", "image": image, "script": "sleep 1\n", "cpu": "1",
                 "image_pull_policy": "Always", "image_pull_secrets": ["registry"],
                 "environment": {"secrets": {"registry": f"puller:{PULL_PASSWORD}"}},
                 "input": [{"path": "pulled/in"}]}
            )  # fmt: skip
            server.create_service(
                {"name": "never", "image": never, "script": "true\n",
                 "image_pull_policy": "Never", "input": [{"path": "never/in"}]}
            )  # fmt: skip
            for index in range(6):
                server.s3_client().put_object(Bucket="pulled", Key=f"in/{index}", Body=b"x")
            server.s3_client().put_object(Bucket="never", Key="in/a", Body=b"x")
            services_seen = _service_definitions_while(
                swarm, lambda: _wait_all_succeeded(server, "pulled", 6, timeout=120)
            )
            refused = _finished_job(server, "never")
            with server.client() as client:
                jobs = client.get("/system/logs/pulled").json()["jobs"]
                logs = [client.get(f"/system/logs/pulled/{job}").text for job in jobs]
        finally:
            server.stop()
    ran_on = {job["node"] for job in jobs.values()}
    assert len(ran_on) >= 2, ran_on
    for node in swarm.nodes:
        if node.hostname in ran_on:
            assert image in node.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    assert (refused["status"], refused["reason"]) == ("Failed", "image")
    assert never in refused["message"] and "Never" in refused["message"]
    assert re.search(r"on node \S+", refused["message"]), refused["message"]
    for node in swarm.nodes:  # `Never`: not pulled on any node
        assert never not in node.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    assert services_seen
    for text in [*services_seen, *logs, server.log(), *swarm_task_logs(swarm)]:
        assert PULL_PASSWORD not in text


#: The registry login of the `pulled` service (the test registry takes any login).
PULL_PASSWORD = "registry-pw-4d1f"


def _service_definitions_while(swarm: Swarm, action: Callable[[], None]) -> list[str]:
    """Run `action` in a thread while collecting the swarm's service definitions."""
    seen: list[str] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as error:  # noqa: BLE001 (re-raised below)
            errors.append(error)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    while not done.wait(0.3):
        ids = swarm.manager.docker("service", "ls", "-q").split()
        if ids:
            try:
                seen.append(swarm.manager.docker("service", "inspect", *ids))
            except RuntimeError:
                pass  # a service ended in between
    if errors:
        raise errors[0]
    return seen


def swarm_task_logs(swarm: Swarm) -> list[str]:
    """What the agents printed, as the nodes' daemons keep it (of the agent containers left)."""
    texts = []
    for node in swarm.nodes:
        for container in node.docker("ps", "-aq").split():
            texts.append(node.docker("logs", container))
    return texts


def test_a_mounted_folder_and_resource_id_on_a_node(swarm: Swarm, tmp_path: Path) -> None:
    """OSCAR's `mount` reaches the node that runs the job (read-only at /mnt), and RESOURCE_ID
    names that node, not the manager."""
    server = serve_on(swarm, tmp_path / "data")
    try:
        s3 = server.s3_client()
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="weights/a.txt", Body=b"first\n")
        server.create_service(
            {"name": "mounting", "image": IMAGE, "cpu": "1",
             "placement": [f"node.hostname=={swarm.workers[0].hostname}"],
             "script": 'cat /mnt/models/weights/a.txt\necho "resource=$RESOURCE_ID"\n'
                       "touch /mnt/models/x 2>/dev/null || echo read-only\n",
             "mount": {"storage_provider": "minio.default", "path": "models/weights"},
             "input": [{"path": "mounting/in"}]}
        )  # fmt: skip
        s3.put_object(Bucket="mounting", Key="in/a", Body=b"x")
        job = _finished_job(server, "mounting")
        with server.client() as client:
            log = client.get(f"/system/logs/mounting/{job['id']}").text
    finally:
        server.stop()
    assert job["status"] == "Succeeded", log
    assert "first\n" in log and "read-only" in log, log
    assert f"resource={swarm.workers[0].hostname}\n" in log, log


def _finished_job(server: RunningServer, service: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.client() as client:
            jobs = client.get(f"/system/logs/{service}").json()["jobs"]
        for job_id, job in jobs.items():
            if job["status"] in ("Succeeded", "Failed"):
                return {"id": job_id, **job}
        time.sleep(0.3)
    raise AssertionError(f"no job of {service} finished: {jobs}")


def test_a_restarted_manager_adopts_the_running_tasks(swarm: Swarm, tmp_path: Path) -> None:
    """kill -9 of `oscar serve` while tasks run on the nodes, then a restart on the same
    addresses: the running attempts are adopted (their agents hand their results in to the new
    process); no file is lost or processed twice."""
    data, files = tmp_path / "data", DYING_FILES
    port, s3_port, staging_port = free_port(), free_port(), free_port()

    def serve() -> RunningServer:
        return serve_on(swarm, data, staging_port, port=port, s3_port=s3_port)

    server = serve()
    try:
        _upload_batch(server, "adopt", files)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _records(data, "adopt")["nodes"]:
            time.sleep(0.2)
        server.kill()
        server = serve()
        _wait_all_succeeded(server, "adopt", files, timeout=150)
        _outputs_are_right(server, "adopt", files)
        adopted = server.log().count("taking over job")
    finally:
        server.stop()
    records = _records(data, "adopt")
    assert {count for _, count in records["per_key"]} == {1} and len(records["per_key"]) == files
    succeeded = [job for job, _, outcome, *_ in records["attempts"] if outcome == "succeeded"]
    assert len(succeeded) == files and len(set(succeeded)) == files
    assert adopted > 0 and records["adopted"] > 0  # taken over, and the running task kept
    _no_services_left(swarm)


def test_a_worker_that_dies_mid_batch_costs_attempts_not_files(
    swarm: Swarm, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    victim = swarm.workers[-1]
    server = serve_on(swarm, data)
    try:
        _upload_batch(server, "dies", DYING_FILES)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill it while it runs attempts
            if victim.hostname in _records(data, "dies")["nodes"]:
                break
            time.sleep(0.2)
        victim.kill()
        _wait_all_succeeded(server, "dies", DYING_FILES, timeout=150)
        _outputs_are_right(server, "dies", DYING_FILES)
    finally:
        server.stop()
    records = _records(data, "dies")
    per_key = records["per_key"]
    assert {count for _, count in per_key} == {1} and len(per_key) == DYING_FILES
    succeeded = [job for job, _, outcome, *_ in records["attempts"] if outcome == "succeeded"]
    assert len(succeeded) == DYING_FILES and len(set(succeeded)) == DYING_FILES
    lost = [a for a in records["attempts"] if a[2] == "infrastructure_failed"]
    assert lost, "the dead node ran attempts: they must be recorded as infrastructure failures"
    assert all(f"node {victim.hostname} went down" in (message or "") for *_, message, _ in lost)
    assert {node for *_, node in lost} == {victim.hostname}  # recorded on the attempts
