"""oscar-cli's habits work unchanged: its command aliases, `-e/--endpoint` for a cluster that is
not configured, several states in `logs list -s`, `logs delete -a/-s`, `version`, and
`apply/delete --default`; against a real `oscar serve` running real containers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from oscarpy import __version__
from tests.support.cli import TEST_IMAGE, add_cluster, run_cli, write_fdl
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.docker

ECHO = '#!/bin/sh\necho "got $(cat "$INPUT_FILE_PATH")"\n'
SLOW = "#!/bin/sh\nsleep 30\n"


def _service(name: str, script: str) -> dict[str, object]:
    return {"name": name, "image": TEST_IMAGE, "script": script, "memory": "64Mi", "cpu": "0.1"}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, docker_client: object
) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("cli-parity") / "data")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> Path:
    """A user whose default cluster is the server, with services `echoer` and `sleeper`."""
    path = tmp_path_factory.mktemp("cli-parity-home")
    add_cluster(path, server)
    fdl = write_fdl(
        path / "fdl",
        [_service("echoer", "echo.sh"), _service("sleeper", "slow.sh")],
        {"echo.sh": ECHO, "slow.sh": SLOW},
    )
    applied = run_cli(path, "apply", str(fdl))
    assert applied.returncode == 0, applied.stderr
    return path


def test_oscar_cli_aliases_name_the_same_commands(home: Path, tmp_path: Path) -> None:
    listed = run_cli(home, "svc", "ls", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert {"echoer", "sleeper"} <= {service["name"] for service in json.loads(listed.stdout)}
    shown = run_cli(home, "s", "get", "echoer")
    assert yaml.safe_load(shown.stdout)["name"] == "echoer"
    assert run_cli(home, "services", "g", "echoer").stdout == shown.stdout

    fdl = write_fdl(tmp_path / "fdl", [_service("short-lived", "echo.sh")], {"echo.sh": ECHO})
    assert run_cli(home, "a", str(fdl)).returncode == 0
    removed = run_cli(home, "svc", "rm", "short-lived")
    assert removed.returncode == 0, removed.stderr
    assert run_cli(home, "svc", "get", "short-lived").returncode != 0

    assert run_cli(home, "c", "add", "spare", "http://127.0.0.1:1", "u", "p").returncode == 0
    deleted = run_cli(home, "cluster", "delete", "spare")
    assert deleted.returncode == 0, deleted.stderr
    clusters = json.loads(run_cli(home, "cluster", "ls", "-o", "json").stdout)
    assert [cluster["id"] for cluster in clusters] == ["test"]


def test_version_command(home: Path) -> None:
    for command in ("version", "v", "--version"):
        answer = run_cli(home, command)
        assert (answer.returncode, answer.stdout) == (0, f"oscar-py {__version__}\n")


def test_run_and_job_reach_an_unregistered_cluster_with_endpoint_and_token(
    home: Path, server: RunningServer, tmp_path: Path
) -> None:
    token = yaml.safe_load(run_cli(home, "service", "get", "echoer").stdout)["token"]
    stranger = tmp_path / "stranger"  # a user with no cluster configured at all
    stranger.mkdir()

    ran = run_cli(stranger, "service", "run", "echoer", "-e", server.url, "-t", token, "-i", "hi")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "got hi\n"
    queued = run_cli(
        stranger, "svc", "job", "echoer", "--endpoint", server.url, "--token", token, "-i", "x"
    )
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.strip()

    no_token = run_cli(stranger, "service", "run", "echoer", "-e", server.url, "-i", "hi")
    assert no_token.returncode != 0 and "-t TOKEN" in no_token.stderr
    wrong = run_cli(
        stranger, "service", "run", "echoer", "-e", server.url, "-t", "x" * 64, "-i", ""
    )
    assert wrong.returncode != 0 and "token was rejected" in wrong.stderr


def test_logs_list_takes_several_states_and_delete_takes_short_flags(home: Path) -> None:
    for text in ("a", "b"):
        assert run_cli(home, "service", "job", "sleeper", "-i", text).returncode == 0
    assert run_cli(home, "service", "job", "echoer", "-i", "done").returncode == 0
    waited = run_cli(home, "service", "wait", "echoer", "--timeout", "60")
    assert waited.returncode == 0, waited.stderr

    unfinished = run_cli(
        home, "svc", "logs", "ls", "sleeper", "-s", "Pending,Running", "-o", "json"
    )
    assert unfinished.returncode == 0, unfinished.stderr
    assert len(json.loads(unfinished.stdout)) == 2
    repeated = run_cli(
        home, "service", "logs", "list", "echoer", "-s", "pending", "-s", "SUCCEEDED", "-o", "json"
    )
    assert {job["status"] for job in json.loads(repeated.stdout)} == {"Succeeded"}
    bad = run_cli(home, "service", "logs", "list", "echoer", "-s", "Done")
    assert bad.returncode != 0 and "unknown state(s) done" in bad.stderr

    assert run_cli(home, "service", "logs", "rm", "echoer", "-s").returncode == 0
    assert json.loads(run_cli(home, "svc", "l", "ls", "echoer", "-o", "json").stdout) == []
    assert run_cli(home, "service", "log", "delete", "sleeper", "-a").returncode == 0
    assert json.loads(run_cli(home, "svc", "logs", "ls", "sleeper", "-o", "json").stdout) == []


def test_apply_and_delete_default_override_the_fdl_cluster(
    home: Path, server: RunningServer, tmp_path: Path
) -> None:
    # The FDL names a configured cluster that is unreachable; --default sends to the default.
    assert run_cli(home, "cluster", "add", "far", "http://127.0.0.1:1", "u", "p").returncode == 0
    document = {"functions": {"oscar": [{"far": _service("defaulted", "echo.sh")}]}}
    fdl = tmp_path / "services.yaml"
    (tmp_path / "echo.sh").write_text(ECHO)
    fdl.write_text(yaml.safe_dump(document))
    try:
        assert run_cli(home, "apply", str(fdl)).returncode != 0  # to `far`, which is down
        applied = run_cli(home, "apply", str(fdl), "--default")
        assert applied.returncode == 0, applied.stderr
        assert "in cluster 'test'" in applied.stderr
        with server.client() as client:
            assert client.get("/system/services/defaulted").status_code == 200
        deleted = run_cli(home, "delete", str(fdl), "--default")
        assert deleted.returncode == 0, deleted.stderr
        with server.client() as client:
            assert client.get("/system/services/defaulted").status_code == 404
    finally:
        run_cli(home, "cluster", "remove", "far")
