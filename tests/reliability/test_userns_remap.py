"""Under a Docker daemon with user-namespace remapping (`--userns-remap=default`), file jobs and
`/run` work as they do elsewhere, and a container's root is an unprivileged user of the host.

The daemon is a private `dockerd` (tests/reliability/private_docker.py: its own socket, data,
exec root and network namespace), started once for the module; `oscar serve` runs as root
against it, as the README sets it up.
"""

from __future__ import annotations

import base64
import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.private_docker import IMAGE, PrivateDocker, running_private_docker
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.docker

# What the script reports: its user inside, and how its user namespace maps users to the host.
SCRIPT = """\
echo "uid $(id -u)"
cat /proc/self/uid_map
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"
echo "$API_KEY" > "$TMP_OUTPUT_DIR/secret.txt"
"""
SECRET = "remapped-secret-1234"
#: The first host uid of the subordinate range dockerd takes for its `dockremap` user: anything
#: from here on is no user of the host.
UNPRIVILEGED = 100000


@pytest.fixture(scope="module")
def remapped_docker(docker_client: Any) -> Iterator[PrivateDocker]:
    with running_private_docker("oscar-userns-", ("--userns-remap=default",)) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def server(
    remapped_docker: PrivateDocker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("userns") / "data", env={"DOCKER_HOST": remapped_docker.host}
    )
    try:
        running.create_service(
            {
                "name": "remapped",
                "image": IMAGE,
                "script": SCRIPT,
                "memory": "32Mi",
                "environment": {"secrets": {"API_KEY": SECRET}},
                "input": [{"path": "remapped/in"}],
                "output": [{"path": "remapped/out"}],
            }
        )
        running.create_service(
            {
                "name": "remapped-root",
                "image": IMAGE,
                "script": 'echo "uid $(id -u)"\ncat /proc/self/uid_map\n',
                "run_as_root": True,
            }
        )
        yield running
    finally:
        running.stop()


def _host_uid_of_root(uid_map: str) -> int:
    """The host uid that user 0 of the container is, from its `/proc/self/uid_map`."""
    inside, outside, _count = (int(field) for field in uid_map.split()[:3])
    assert inside == 0
    return outside


def test_the_daemon_remaps_users(remapped_docker: PrivateDocker) -> None:
    info = remapped_docker.docker("info", "--format", "{{json .SecurityOptions}}").stdout
    assert "name=userns" in info


def test_a_file_job_runs_and_its_user_is_unprivileged_on_the_host(server: RunningServer) -> None:
    s3 = server.s3_client()
    s3.put_object(Bucket="remapped", Key="in/hello.txt", Body=b"hello under remap\n")
    with server.client() as client:
        deadline = time.monotonic() + 120
        jobs: dict[str, Any] = {}
        while time.monotonic() < deadline:
            jobs = client.get("/system/logs/remapped").json()["jobs"]
            if jobs and all(job["status"] in ("Succeeded", "Failed") for job in jobs.values()):
                break
            time.sleep(0.2)
        (job_id, job), *_ = jobs.items()
        log = client.get(f"/system/logs/remapped/{job_id}").text
    assert job["status"] == "Succeeded", log

    copied = s3.get_object(Bucket="remapped", Key="out/copy.txt")["Body"].read()
    assert copied == b"hello under remap\n"
    secret = s3.get_object(Bucket="remapped", Key="out/secret.txt")["Body"].read()
    assert secret == f"{SECRET}\n".encode()
    lines = log.splitlines()
    assert "uid 65534" in lines, log
    uid_map = next(line for line in lines if line.split()[:1] == ["0"])
    assert _host_uid_of_root(uid_map) >= UNPRIVILEGED


def test_run_answers_and_its_container_is_unprivileged_on_the_host(
    server: RunningServer, remapped_docker: PrivateDocker
) -> None:
    with server.client() as client:
        answer = client.post("/run/remapped", content=b'{"greeting": "hi"}')
    assert answer.status_code == 200, answer.text
    outputs = zipfile.ZipFile(io.BytesIO(base64.b64decode(answer.text)))
    assert outputs.read("copy.txt") == b'{"greeting": "hi"}'
    assert outputs.read("secret.txt") == b"********\n"  # the script had it; answers mask it

    # The warm container stays for the next call: its first process, seen from the host.
    (container,) = remapped_docker.docker(
        "ps", "-q", "--filter", "label=oscar.service=remapped"
    ).stdout.split()
    pid = remapped_docker.docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    real, effective, *_ = (
        int(uid)
        for uid in next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    )
    assert min(real, effective) >= UNPRIVILEGED


def test_a_service_that_runs_as_root_is_root_only_inside(server: RunningServer) -> None:
    with server.client() as client:
        answer = client.post("/run/remapped-root", content=b"{}")
    assert answer.status_code == 200, answer.text
    uid, uid_map, *_ = answer.text.splitlines()
    assert uid == "uid 0"
    assert _host_uid_of_root(uid_map) >= UNPRIVILEGED
