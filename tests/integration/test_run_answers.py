"""`POST /run/{service}` against a real `oscar serve` and the real Docker Engine.

One server serves the whole module (starting one costs seconds); each test registers its own
service, so that pools do not interfere. Warm containers are found through their labels.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.usefixtures("docker_client")

IMAGE = "oscar-test/busybox:latest"
BODY_LIMIT = 1024 * 1024
IDLE_SECONDS = 2
DISK_LIMIT = 8 * 1024 * 1024

COWSAY = r"""#!/bin/sh
message=$(sed -n 's/.*"message" *: *"\([^"]*\)".*/\1/p' "$INPUT_FILE_PATH")
echo " < $message >"
echo "        \   ^__^"
echo "         \  (oo)\_______"
"""

TOOL = r"""#!/bin/sh
case "$(head -c 16 "$INPUT_FILE_PATH")" in
  one*) printf 'hello' > "$TMP_OUTPUT_DIR/hello.txt" ;;
  two*) echo a > "$TMP_OUTPUT_DIR/a.txt"; mkdir "$TMP_OUTPUT_DIR/sub"
        echo b > "$TMP_OUTPUT_DIR/sub/b.txt" ;;
  fail*) echo "about to fail"; exit 3 ;;
  copy*) cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.bin" ;;
  big*) yes 0123456789abcdef | head -c 3000000 > "$TMP_OUTPUT_DIR/big.txt" ;;
  huge*) head -c 20000000 /dev/zero > "$TMPDIR/huge"
         echo "head: $? size: $(wc -c < "$TMPDIR/huge")" ;;
  leave*) echo secret > "$TMPDIR/left-behind"; echo secret > left-in-work-dir
          ls /oscar-run/*/ ;;
  look*) ls -A "$TMPDIR"; ls /oscar-run ;;
  *) head -c 4 "$INPUT_FILE_PATH" | od -An -tx1 ;;
esac
"""

SLEEPER = '#!/bin/sh\nsleep "$(cat "$INPUT_FILE_PATH")"\necho woke up\n'

STALE: dict[str, str] = {}
"""The warm container a crashed server left in the module server's data directory."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[RunningServer]:
    """The module's server, started on the data directory of a server that crashed (kill -9)
    with a warm container running: one start less than testing the restart on its own."""
    data = tmp_path_factory.mktemp("run") / "data"
    crashed = start_server(data)
    try:
        create_service(crashed, "survivor", COWSAY, synchronous={"min_scale": 1})
        STALE["survivor"] = wait_for(lambda: warm_containers(docker_client, crashed, "survivor"))[
            0
        ].id
    finally:
        crashed.kill()
    running = start_server(
        data,
        env={
            "OSCAR_RUN_BODY_LIMIT": str(BODY_LIMIT),
            "OSCAR_RUN_IDLE_SECONDS": str(IDLE_SECONDS),
            "OSCAR_JOB_DISK_LIMIT": str(DISK_LIMIT),
        },
    )
    yield running
    running.stop()
    for found in warm_containers(docker_client, running):
        docker_client.api.remove_container(found.id, force=True)  # left by a failure
    for container in docker_client.containers.list(all=True, filters={"id": STALE["survivor"]}):
        container.remove(force=True)


@dataclass(frozen=True)
class Found:
    id: str


def warm_containers(docker_client: Any, server: RunningServer, service: str = "") -> list[Found]:
    """This server's running warm containers (their owner label carries the server's pid).

    Listed through the low-level API: the high-level list inspects each container and fails
    on one removed meanwhile."""
    labels = ["oscar.role=warm"] + ([f"oscar.service={service}"] if service else [])
    found = docker_client.api.containers(filters={"label": labels, "status": "running"})
    marker = f"/{server.process.pid}/"
    return [
        Found(c["Id"]) for c in found if marker in (c.get("Labels") or {}).get("oscar.owner", "")
    ]


def wait_for(condition: Any, timeout: float = 30, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def create_service(server: RunningServer, name: str, script: str, **extra: Any) -> dict[str, Any]:
    definition = {"name": name, "image": IMAGE, "script": script, "cpu": "0.1", **extra}
    with server.client() as client:
        response = client.post("/system/services", json=definition)
        assert response.status_code == 201, response.text
        found: dict[str, Any] = client.get(f"/system/services/{name}").json()
        return found


def run(server: RunningServer, service: str, content: bytes, **options: Any) -> httpx.Response:
    with server.client() as client:
        return client.post(f"/run/{service}", content=content, **options)


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def test_cowsay_json_body_answers_with_the_script_output(server: RunningServer) -> None:
    service = create_service(server, "cowsay", COWSAY, synchronous={"min_scale": 1})
    body = json.dumps({"message": "Hello from oscar-py"}).encode()

    # With the service's own token, as OSCAR clients call it.
    response = httpx.post(
        f"{server.url}/run/cowsay",
        content=body,
        headers={"Authorization": f"Bearer {service['token']}"},
        timeout=60,
    )

    assert response.status_code == 200, response.text[:2000]
    assert "< Hello from oscar-py >" in response.text
    assert "(oo)" in response.text
    job_id = response.headers["X-Oscar-Job-Id"]
    with server.client() as client:
        job = client.get("/system/logs/cowsay").json()["jobs"][job_id]
        assert (job["status"], job["source"]) == ("Succeeded", "sync")
        assert "< Hello from oscar-py >" in client.get(f"/system/logs/cowsay/{job_id}").text


def test_run_needs_that_services_token_or_the_admin(server: RunningServer) -> None:
    create_service(server, "guarded", COWSAY)
    other = create_service(server, "other", COWSAY)

    wrong = httpx.post(
        f"{server.url}/run/guarded",
        content=b"{}",
        headers={"Authorization": f"Bearer {other['token']}"},
    )
    anonymous = httpx.post(f"{server.url}/run/guarded", content=b"{}")

    assert (wrong.status_code, anonymous.status_code) == (401, 401)
    assert run(server, "missing", b"{}").status_code == 404


def test_single_output_file_is_answered_as_base64(server: RunningServer) -> None:
    create_service(server, "single", TOOL)

    response = run(server, "single", b64("one"))

    assert response.status_code == 200, response.text[:2000]
    assert base64.b64decode(response.text) == b"hello"


def test_several_output_files_are_answered_as_a_base64_zip(server: RunningServer) -> None:
    create_service(server, "several", TOOL)

    response = run(server, "several", b64("two"))

    assert response.status_code == 200, response.text[:2000]
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(response.text)))
    assert sorted(archive.namelist()) == ["a.txt", "sub/b.txt"]
    assert archive.read("sub/b.txt") == b"b\n"


def test_binary_body_and_answer_skip_base64(server: RunningServer) -> None:
    create_service(server, "binary", TOOL)
    payload = b"copy" + bytes(range(256)) * 64

    response = run(
        server,
        "binary",
        payload,
        headers={"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"},
    )

    assert response.status_code == 200, response.text[:2000]
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == payload


def test_a_large_answer_is_streamed_as_one_valid_base64_text(server: RunningServer) -> None:
    create_service(server, "large", TOOL)

    response = run(server, "large", b64("big"))

    assert response.status_code == 200, response.text[:2000]
    content = base64.b64decode(response.content, validate=True)
    assert len(content) == 3000000
    assert content == (b"0123456789abcdef\n" * 176471)[:3000000]


def test_no_file_of_a_request_grows_past_the_disk_limit(
    server: RunningServer, docker_client: Any
) -> None:
    create_service(server, "capped", TOOL, synchronous={"min_scale": 1})

    response = run(server, "capped", b64("huge"))

    assert response.status_code == 200, response.text[:2000]
    assert f"head: 153 size: {DISK_LIMIT}" in response.text  # 128 + SIGXFSZ
    for warm in warm_containers(docker_client, server, "capped"):
        host_config = docker_client.api.inspect_container(warm.id)["HostConfig"]
        assert {"Name": "fsize", "Soft": DISK_LIMIT, "Hard": DISK_LIMIT} in host_config["Ulimits"]


def test_invalid_base64_body_is_refused_with_400(server: RunningServer) -> None:
    create_service(server, "strict", TOOL)

    response = run(server, "strict", b"this is not base64!")

    assert response.status_code == 400
    assert "neither JSON nor valid base64" in response.text


def test_body_over_the_limit_is_refused_with_413(server: RunningServer) -> None:
    create_service(server, "limited", TOOL)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(3):
            yield b"A" * (BODY_LIMIT // 2)

    with server.client() as client:
        response = client.post("/run/limited", content=chunks())

    assert response.status_code == 413
    assert list((server.data_dir / "run").glob("*/requests/*")) == []


def test_failing_script_answers_500_with_the_log_tail(server: RunningServer) -> None:
    create_service(server, "failing", TOOL)

    response = run(server, "failing", b64("fail"))

    assert response.status_code == 500
    body = response.json()
    assert "script exited with 3" in body["detail"]
    assert "about to fail" in body["log_tail"]
    with server.client() as client:
        job = client.get("/system/logs/failing").json()["jobs"][body["job_id"]]
    assert (job["status"], job["exit_code"], job["source"]) == ("Failed", 3, "sync")


def test_timeout_answers_504_and_the_container_is_replaced(
    server: RunningServer, docker_client: Any
) -> None:
    sleepy = '#!/bin/sh\nsleep "$(cat "$INPUT_FILE_PATH")"\necho woke up\n'
    create_service(server, "sleepy", sleepy, timeout=1, synchronous={"min_scale": 1})
    first = wait_for(lambda: warm_containers(docker_client, server, "sleepy"))[0].id

    started = time.monotonic()
    response = run(server, "sleepy", b"20")

    assert response.status_code == 504
    assert time.monotonic() - started < 10
    assert "timeout" in response.text
    replaced = wait_for(
        lambda: [c.id for c in warm_containers(docker_client, server, "sleepy") if c.id != first]
    )
    assert replaced
    fine = run(server, "sleepy", b"0")
    assert fine.status_code == 200
    assert fine.text == "woke up\n"


def test_a_client_that_hangs_up_stops_its_script(server: RunningServer, docker_client: Any) -> None:
    create_service(server, "hangup", SLEEPER, synchronous={"min_scale": 1, "max_scale": 1})
    container = wait_for(lambda: warm_containers(docker_client, server, "hangup"))[0].id
    url = httpx.URL(server.url)
    body = b64("300")
    credentials = base64.b64encode(":".join(server.auth).encode()).decode()
    request = (
        f"POST /run/hangup HTTP/1.1\r\nHost: {url.host}\r\n"
        f"Authorization: Basic {credentials}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    with socket.create_connection((url.host, url.port)) as client:
        client.sendall(request)
        wait_for(lambda: "sleep 300" in str(docker_client.api.top(container)["Processes"]))
        with server.client() as listing:  # a call that runs long is listed while it runs
            wait_for(
                lambda: [
                    job
                    for job in listing.get("/system/logs/hangup").json()["jobs"].values()
                    if job["status"] == "Running"
                ],
                timeout=10,
            )

    # The script stops with its container (killed, never reused), not after 300 s; the
    # request is recorded as a cancelled job, and the pool answers the next one.
    wait_for(
        lambda: container not in [found.id for found in warm_containers(docker_client, server)],
        timeout=10,
        step=0.05,
    )
    with server.client() as client:
        ((job_id, job),) = wait_for(
            lambda: [
                entry
                for entry in client.get("/system/logs/hangup").json()["jobs"].items()
                if entry[1]["status"] != "Running"
            ]
        )
        assert job["status"] == "Failed"
        assert "the client went away" in client.get(f"/system/logs/hangup/{job_id}").text
    fine = run(server, "hangup", b64("0"))
    assert (fine.status_code, fine.text) == (200, "woke up\n")


def delete(client: httpx.Client, deleted: str, service: str, job_id: str) -> httpx.Response:
    if deleted == "the job":
        return client.delete(f"/system/logs/{service}/{job_id}")
    if deleted == "all jobs":
        return client.delete(f"/system/logs/{service}", params={"all": 1})
    return client.delete(f"/system/services/{service}")


@pytest.mark.parametrize("deleted", ["the job", "all jobs", "the service"])
def test_deleting_a_running_run_job_stops_its_script_at_once(
    server: RunningServer, docker_client: Any, deleted: str
) -> None:
    name = "deleted-" + deleted.split()[-1]
    create_service(server, name, SLEEPER, synchronous={"min_scale": 1, "max_scale": 1})
    container = wait_for(lambda: warm_containers(docker_client, server, name))[0].id
    with ThreadPoolExecutor(1) as caller:
        call = caller.submit(run, server, name, b64("300"))
        wait_for(lambda: "sleep 300" in str(docker_client.api.top(container)["Processes"]))
        with server.client() as client:
            (job_id,) = wait_for(lambda: list(client.get(f"/system/logs/{name}").json()["jobs"]))

            asked = time.monotonic()
            assert delete(client, deleted, name, job_id).status_code == 204
            # The caller is answered at once (not after 300 s), and told why.
            answer = call.result(timeout=10)
            answered = time.monotonic() - asked

    assert answered < 5, answered
    assert answer.status_code == 409, answer.text
    assert answer.headers["X-Oscar-Job-Id"] == job_id
    assert "the job was deleted" in answer.json()["detail"]
    # The script went with its container (killed, never reused), and the job with its log.
    wait_for(
        lambda: container not in [found.id for found in warm_containers(docker_client, server)],
        timeout=5,
        step=0.05,
    )
    if deleted == "the service":
        create_service(server, name, SLEEPER, synchronous={"min_scale": 1, "max_scale": 1})
    with server.client() as client:
        assert client.get(f"/system/logs/{name}").json()["jobs"] == {}
        assert client.get(f"/system/logs/{name}/{job_id}").status_code == 404
    fine = run(server, name, b64("0"))
    assert (fine.status_code, fine.text) == (200, "woke up\n")


def test_deleting_a_call_that_waits_for_a_container_answers_it_at_once(
    server: RunningServer, docker_client: Any
) -> None:
    create_service(server, "waiting", SLEEPER, synchronous={"min_scale": 1, "max_scale": 1})
    container = wait_for(lambda: warm_containers(docker_client, server, "waiting"))[0].id
    with ThreadPoolExecutor(2) as callers, server.client() as client:
        busy = callers.submit(run, server, "waiting", b64("300"))
        wait_for(lambda: "sleep 300" in str(docker_client.api.top(container)["Processes"]))
        (busy_id,) = wait_for(lambda: list(client.get("/system/logs/waiting").json()["jobs"]))
        waiting = callers.submit(run, server, "waiting", b64("0"))
        (waiting_id,) = wait_for(
            lambda: set(client.get("/system/logs/waiting").json()["jobs"]) - {busy_id}
        )

        assert client.delete(f"/system/logs/waiting/{waiting_id}").status_code == 204
        # It stops waiting for the only container (busy for 300 s), which goes on.
        answer = waiting.result(timeout=5)
        assert (answer.status_code, answer.headers["X-Oscar-Job-Id"]) == (409, waiting_id)
        assert "sleep 300" in str(docker_client.api.top(container)["Processes"])
        assert not busy.done()

        assert client.delete(f"/system/logs/waiting/{busy_id}").status_code == 204
        assert busy.result(timeout=5).status_code == 409
    fine = run(server, "waiting", b64("0"))
    assert (fine.status_code, fine.text) == (200, "woke up\n")


def test_concurrent_requests_beyond_min_scale_are_all_answered(
    server: RunningServer, docker_client: Any
) -> None:
    echo = '#!/bin/sh\nsleep 1\ncat "$INPUT_FILE_PATH"\n'
    create_service(server, "busy", echo, synchronous={"min_scale": 1, "max_scale": 4})
    messages = [json.dumps({"n": n}) for n in range(8)]

    with ThreadPoolExecutor(len(messages)) as pool:
        answers = list(pool.map(lambda m: run(server, "busy", m.encode()), messages))

    assert [a.status_code for a in answers] == [200] * len(messages)
    assert [a.text for a in answers] == messages
    with server.client() as client:
        logs = [
            client.get(f"/system/logs/busy/{a.headers['X-Oscar-Job-Id']}").text for a in answers
        ]
    used = {
        line.split()[-1] for text in logs for line in text.splitlines() if "warm container" in line
    }
    assert 2 <= len(used) <= 4
    # Beyond min_scale, idle containers go after the idle period.
    wait_for(
        lambda: len(warm_containers(docker_client, server, "busy")) == 1, timeout=IDLE_SECONDS + 10
    )


def test_warm_containers_start_with_the_service_and_are_replaced_when_killed(
    server: RunningServer, docker_client: Any
) -> None:
    create_service(server, "resilient", COWSAY, synchronous={"min_scale": 2})
    before = wait_for(
        lambda: (
            len(warm_containers(docker_client, server, "resilient")) == 2
            and warm_containers(docker_client, server, "resilient")
        )
    )
    victim = docker_client.containers.get(before[0].id)
    mounts = victim.attrs["HostConfig"]
    assert mounts["Privileged"] is False
    assert mounts["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in mounts["SecurityOpt"]

    victim.kill()

    after = wait_for(
        lambda: (
            {c.id for c in warm_containers(docker_client, server, "resilient")} - {victim.id}
            if len(warm_containers(docker_client, server, "resilient")) == 2
            else None
        )
    )
    assert victim.id not in after and len(after) == 2
    response = run(server, "resilient", json.dumps({"message": "still here"}).encode())
    assert "< still here >" in response.text


def test_nothing_of_one_request_is_visible_to_the_next(server: RunningServer) -> None:
    create_service(server, "isolated", TOOL, synchronous={"min_scale": 1, "max_scale": 1})

    first = run(server, "isolated", b64("leave"))
    second = run(server, "isolated", b64("look"))

    assert first.status_code == second.status_code == 200
    second_job = second.headers["X-Oscar-Job-Id"]
    # TMPDIR is empty and the mount holds only this request's own directory.
    assert second.text.split() == [second_job]
    with server.client() as client:
        first_log = client.get(f"/system/logs/isolated/{first.headers['X-Oscar-Job-Id']}").text
        second_log = client.get(f"/system/logs/isolated/{second_job}").text
    container = [line.split()[-1] for line in first_log.splitlines() if "warm container" in line]
    assert container and container[0] in second_log  # the same container served both


def containers_in_log(server: RunningServer, service: str, answer: httpx.Response) -> list[str]:
    with server.client() as client:
        text = client.get(f"/system/logs/{service}/{answer.headers['X-Oscar-Job-Id']}").text
    return [line.split()[-1] for line in text.splitlines() if "warm container" in line]


def test_min_scale_zero_starts_a_container_on_demand_and_reuses_it_while_warm(
    server: RunningServer, docker_client: Any
) -> None:
    create_service(server, "lazy", COWSAY)
    # Control: the upkeep round that starts the container of a min_scale 1 service created
    # after "lazy" also maintained "lazy"'s pool, and started nothing for min_scale 0.
    create_service(server, "eager", COWSAY, synchronous={"min_scale": 1})
    wait_for(lambda: warm_containers(docker_client, server, "eager"))
    assert warm_containers(docker_client, server, "lazy") == []
    with server.client() as client:
        assert client.delete("/system/services/eager").status_code == 204

    first = run(server, "lazy", b'{"message": "one"}')
    second = run(server, "lazy", b'{"message": "two"}')

    assert "< two >" in second.text
    assert containers_in_log(server, "lazy", first) == containers_in_log(server, "lazy", second)
    wait_for(lambda: not warm_containers(docker_client, server, "lazy"), timeout=IDLE_SECONDS + 10)


def test_updating_a_service_replaces_its_warm_containers(
    server: RunningServer, docker_client: Any
) -> None:
    create_service(server, "changing", COWSAY, synchronous={"min_scale": 1})
    old = wait_for(lambda: warm_containers(docker_client, server, "changing"))[0].id
    definition = {
        "name": "changing",
        "image": IMAGE,
        "script": "#!/bin/sh\necho version two\n",
        "cpu": "0.1",
        "synchronous": {"min_scale": 1},
    }

    with server.client() as client:
        assert client.put("/system/services", json=definition).status_code == 204

    new = wait_for(
        lambda: [c.id for c in warm_containers(docker_client, server, "changing") if c.id != old]
    )
    assert run(server, "changing", b"{}").text == "version two\n"
    wait_for(lambda: old not in [c.id for c in warm_containers(docker_client, server, "changing")])
    assert new


def test_deleting_a_service_removes_its_warm_containers(
    server: RunningServer, docker_client: Any
) -> None:
    create_service(server, "doomed", COWSAY, synchronous={"min_scale": 2})
    wait_for(lambda: len(warm_containers(docker_client, server, "doomed")) == 2)

    with server.client() as client:
        assert client.delete("/system/services/doomed").status_code == 204

    wait_for(lambda: not warm_containers(docker_client, server, "doomed"))
    assert run(server, "doomed", b"{}").status_code == 404


def test_a_restarted_server_replaces_the_warm_containers_of_the_crashed_one(
    server: RunningServer, docker_client: Any
) -> None:
    stale = STALE["survivor"]

    fresh = wait_for(lambda: warm_containers(docker_client, server, "survivor"))

    assert stale not in [c.id for c in fresh]
    assert docker_client.containers.list(all=True, filters={"id": stale}) == []
    answer = run(server, "survivor", b'{"message": "back"}')
    assert "< back >" in answer.text


def test_the_official_oscar_python_client_runs_a_service(
    server: RunningServer, tmp_path: Path
) -> None:
    from oscar_python.client import Client

    create_service(server, "pycow", COWSAY)
    client = Client(
        {
            "cluster_id": "oscar-py-test",
            "endpoint": server.url,
            "user": server.username,
            "password": server.password,
            "ssl": "False",
        }
    )

    # It fetches the service token, then sends the input base64-encoded (as application/json).
    response = client.run_service(
        "pycow", input='{"message": "from oscar_python"}', output=str(tmp_path / "out.txt")
    )

    assert response.status_code == 200
    assert "< from oscar_python >" in (tmp_path / "out.txt").read_text()
