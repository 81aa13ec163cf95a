"""Attacks from inside warm `/run` containers and job containers, against a real `oscar serve`
(running as root, as the README sets it up) and real containers (issue #13, items 1, 2, 7, 14).

Each test performs the attack and asserts it fails; each fails on the code before the fix (a
background process survived its request, the server read outputs by path after the script, the
container's configuration held the secrets, answers were not masked).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.docker

IMAGE = "oscar-test/busybox:latest"
SECRET = "api-secret-value-4711"
BODY_SECRET = "caller-two-private-body-0815"
HOST_SECRET = "root-only-host-file-content-2323"

# One script for every step of the attacks; the request body says which step.
ATTACKER = r"""
step=$(sed -n 's/.*"step": *"\([a-z-]*\)".*/\1/p' "$INPUT_FILE_PATH")
case "$step" in
  plant)
    # Copies every later request's body it can see, for as long as it lives.
    ( trap '' HUP TERM
      while :; do
        for f in /oscar-run/*/input/event_file; do cat "$f" >> /tmp/stolen 2>/dev/null; done
        sleep 0.05
      done ) </dev/null >/dev/null 2>&1 &
    sleep 0.5
    # Positive control: the copier runs, and it has copied this very request's body.
    grep -c plant /tmp/stolen ;;
  victim) sleep 1; echo victim-done ;;
  collect) cat /tmp/stolen 2>/dev/null; echo collected ;;
  swap)
    # Writes an innocent output, then waits (in the output directory, so that it keeps reaching
    # it when the server moves the request's directory) until the request is over, and turns
    # the output into a link to a host file only root can read.
    cd "$TMP_OUTPUT_DIR"
    echo innocent > out.txt
    target=$(sed -n 's/.*"target": *"\([^"]*\)".*/\1/p' "$INPUT_FILE_PATH")
    ( while [ -d "/oscar-run/$JOB_UUID" ]; do :; done
      ln -sf "$target" out.txt.new && mv -f out.txt.new out.txt ) </dev/null >/dev/null 2>&1 &
    ;;
  whoami) id -u ;;
  slow-whoami) id -u; sleep 2 ;;
  secrets)
    echo "key=$API_KEY token=$OSCAR_SERVICE_TOKEN"
    ;;
  secret-file)
    echo "in a file: $API_KEY" > "$TMP_OUTPUT_DIR/result.txt" ;;
  network) ls /sys/class/net | tr '\n' ' ' ;;
esac
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("isolation") / "data"
    running = start_server(data, env={"OSCAR_JOB_RETRY_BACKOFF": "0.05"})
    yield running
    running.stop()


def create(server: RunningServer, name: str, **fields: Any) -> dict[str, Any]:
    definition = {
        "name": name,
        "image": IMAGE,
        "script": ATTACKER,
        "cpu": "0.1",
        "memory": "64Mi",
        "synchronous": {"min_scale": 1, "max_scale": 1},
        "environment": {"secrets": {"API_KEY": SECRET}},
        **fields,
    }
    with server.client() as client:
        response = client.post("/system/services", json=definition)
        assert response.status_code == 201, response.text
        found: dict[str, Any] = client.get(f"/system/services/{name}").json()
        return found


def run(server: RunningServer, service: str, step: str, **extra: str) -> httpx.Response:
    body = json.dumps({"step": step, **extra}).encode()
    with server.client() as client:
        return client.post(f"/run/{service}", content=body)


def test_no_process_of_a_run_request_outlives_it_or_sees_the_next_callers_body(
    server: RunningServer,
) -> None:
    create(server, "copier")

    planted = run(server, "copier", "plant")
    assert planted.status_code == 200, planted.text
    assert planted.text.strip() not in ("", "0"), "the copier did not run: the test proves nothing"
    victim = run(server, "copier", "victim", secret=BODY_SECRET)
    assert victim.status_code == 200, victim.text
    collected = run(server, "copier", "collect")

    assert collected.status_code == 200, collected.text
    assert "collected" in collected.text
    assert BODY_SECRET not in collected.text


def test_a_run_answer_never_carries_a_host_file_through_a_link(
    server: RunningServer, tmp_path: Path
) -> None:
    secret = tmp_path / "root-only.txt"
    secret.write_text(HOST_SECRET)
    secret.chmod(0o600)
    create(server, "swapper")

    for _ in range(5):
        answer = run(server, "swapper", "swap", target=str(secret))
        assert answer.status_code == 200, answer.text
        assert base64.b64decode(answer.text) == b"innocent\n"
        assert HOST_SECRET not in answer.text


def test_scripts_run_unprivileged_unless_their_service_needs_root(server: RunningServer) -> None:
    create(server, "plain")
    assert run(server, "plain", "whoami").text.strip() == "65534"

    create(server, "rooted", run_as_root=True)
    assert run(server, "rooted", "whoami").text.strip() == "0"


def test_a_file_job_runs_unprivileged_and_its_secrets_are_not_in_the_container_config(
    server: RunningServer, docker_client: Any
) -> None:
    service = create(server, "inspected", synchronous={})
    with server.client() as client:
        submitted = client.post(
            "/job/inspected",
            content=b'{"step": "slow-whoami"}',
            headers={"Authorization": f"Bearer {service['token']}"},
        )
        assert submitted.status_code == 201, submitted.text
        # While the job's container exists, its configuration shows neither secret.
        deadline = time.monotonic() + 60
        configs: list[dict[str, Any]] = []
        log = ""
        while time.monotonic() < deadline:
            for found in docker_client.api.containers(
                all=True, filters={"label": "oscar.service=inspected"}
            ):
                try:
                    configs.append(docker_client.api.inspect_container(found["Id"]))
                except Exception:  # noqa: BLE001 (removed meanwhile)
                    pass
            jobs = client.get("/system/logs/inspected").json()["jobs"]
            if jobs and all(job["status"] in ("Succeeded", "Failed") for job in jobs.values()):
                (job_id, job), *_ = jobs.items()
                assert job["status"] == "Succeeded", job
                log = client.get(f"/system/logs/inspected/{job_id}").text
                break
            time.sleep(0.05)
    assert configs, "no job container was seen: the test proves nothing"
    shown = json.dumps(configs)
    assert SECRET not in shown
    assert service["token"] not in shown
    assert "65534" in log.split()


def test_a_service_with_network_none_has_no_network(server: RunningServer) -> None:
    create(server, "offline", network="none")
    create(server, "online")

    assert run(server, "offline", "network").text.split() == ["lo"]
    assert "eth0" in run(server, "online", "network").text.split()


def test_run_answers_mask_the_services_secrets_unless_it_opts_out(server: RunningServer) -> None:
    masked = create(server, "masked")
    answer = run(server, "masked", "secrets").text
    assert SECRET not in answer and masked["token"] not in answer
    assert answer.strip() == "key=******** token=********"
    in_file = base64.b64decode(run(server, "masked", "secret-file").text)
    assert in_file == b"in a file: ********\n"

    shown = create(server, "shown", mask_secrets=False)
    answer = run(server, "shown", "secrets").text
    assert f"key={SECRET}" in answer and shown["token"] in answer
