"""`oscar apply|delete` and `oscar service list|get|delete` against a real `oscar serve`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from oscarpy.cli import exit_codes
from tests.support.cli import TEST_IMAGE, add_cluster, run_cli, write_fdl
from tests.support.server import RunningServer

SCRIPT = '#!/bin/sh\necho processed "$INPUT_FILE_PATH"\n'


@pytest.fixture(scope="module")
def server(wire_server: RunningServer) -> RunningServer:
    return wire_server


@pytest.fixture
def home(tmp_path: Path, server: RunningServer) -> Path:
    """A user whose only (default) cluster is the test server."""
    path = tmp_path / "home"
    path.mkdir()
    add_cluster(path, server)
    return path


def _service(name: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "image": TEST_IMAGE,
        "script": "script.sh",
        "memory": "64Mi",
        "cpu": "0.1",
        "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
        "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}],
        **extra,
    }


def test_apply_creates_then_updates_and_get_shows_the_definition(
    home: Path, tmp_path: Path
) -> None:
    fdl = write_fdl(tmp_path / "fdl", [_service("apply-me")], {"script.sh": SCRIPT})

    created = run_cli(home, "apply", str(fdl))
    fdl.write_text(fdl.read_text().replace("memory: 64Mi", "memory: 128Mi"))
    updated = run_cli(home, "apply", str(fdl))
    shown = run_cli(home, "service", "get", "apply-me")

    assert created.returncode == 0, created.stderr
    assert "created" in created.stderr
    assert updated.returncode == 0, updated.stderr
    assert "updated" in updated.stderr
    definition = yaml.safe_load(shown.stdout)
    assert definition["name"] == "apply-me" and definition["memory"] == "128Mi"
    assert definition["script"] == SCRIPT
    assert definition["input"][0]["path"] == "apply-me/in"


def test_apply_prints_each_setting_that_is_dropped_or_not_honoured(
    home: Path, tmp_path: Path
) -> None:
    service = _service("warned-cli", memroy="1Gi", interlink_node_name="vega-vk")
    fdl = write_fdl(tmp_path / "fdl", [service], {"script.sh": SCRIPT})

    applied = run_cli(home, "apply", str(fdl))

    assert applied.returncode == 0, applied.stderr
    lines = [line for line in applied.stderr.splitlines() if line.startswith("warning:")]
    assert lines == [
        "warning: service 'warned-cli': functions.oscar[0].oscar-cluster.memroy: "
        "unknown key, ignored",
        "warning: service 'warned-cli': functions.oscar[0].oscar-cluster.interlink_node_name: "
        "not supported by oscar-py, ignored: interLink nodes are not used; jobs run on this "
        "server",
    ]


def test_list_as_table_and_json(home: Path, tmp_path: Path) -> None:
    fdl = write_fdl(
        tmp_path / "fdl",
        [_service("listed-one"), _service("listed-two")],
        {"script.sh": SCRIPT},
    )
    assert run_cli(home, "apply", str(fdl)).returncode == 0

    table = run_cli(home, "service", "list")
    listing = run_cli(home, "service", "list", "-o", "json")

    assert table.returncode == 0, table.stderr
    assert "listed-one" in table.stdout and "listed-two/in" in table.stdout
    names = {service["name"] for service in json.loads(listing.stdout)}
    assert {"listed-one", "listed-two"} <= names


def test_apply_with_name_deploys_a_copy(home: Path, tmp_path: Path) -> None:
    fdl = write_fdl(tmp_path / "fdl", [_service("original")], {"script.sh": SCRIPT})

    result = run_cli(home, "apply", str(fdl), "-n", "renamed-copy")

    assert result.returncode == 0, result.stderr
    assert (
        json.loads(run_cli(home, "service", "get", "renamed-copy", "-o", "json").stdout)["image"]
        == TEST_IMAGE
    )
    assert run_cli(home, "service", "get", "original").returncode == exit_codes.EXIT_NOT_FOUND


def test_bad_fdl_names_file_and_field_and_creates_nothing(home: Path, tmp_path: Path) -> None:
    fdl = write_fdl(tmp_path / "fdl", [_service("Bad_Name", memory="lots")], {"script.sh": SCRIPT})

    result = run_cli(home, "apply", str(fdl))

    assert result.returncode == exit_codes.EXIT_USAGE
    assert str(fdl) in result.stderr and "name" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_fdl_with_a_missing_script_is_refused(home: Path, tmp_path: Path) -> None:
    fdl = write_fdl(tmp_path / "fdl", [_service("no-script")], {})

    result = run_cli(home, "apply", str(fdl))

    assert result.returncode == exit_codes.EXIT_USAGE
    assert "script.sh" in result.stderr


def test_unknown_service_is_not_found(home: Path) -> None:
    for command in (
        ["service", "get", "nope"],
        ["service", "delete", "nope"],
        ["service", "logs", "list", "nope"],
    ):
        result = run_cli(home, *command)

        assert result.returncode == exit_codes.EXIT_NOT_FOUND, (command, result.stderr)
        assert "nope" in result.stderr and "Traceback" not in result.stderr


def test_delete_fdl_and_service_delete(home: Path, tmp_path: Path) -> None:
    fdl = write_fdl(
        tmp_path / "fdl", [_service("doomed-one"), _service("doomed-two")], {"script.sh": SCRIPT}
    )
    assert run_cli(home, "apply", str(fdl)).returncode == 0

    by_name = run_cli(home, "service", "delete", "doomed-two")
    by_fdl = run_cli(home, "delete", str(fdl))

    assert by_name.returncode == 0, by_name.stderr
    # doomed-two is already gone: doomed-one is deleted and the missing one reported.
    assert by_fdl.returncode == exit_codes.EXIT_NOT_FOUND
    assert "doomed-two" in by_fdl.stderr
    names = [
        service["name"]
        for service in json.loads(run_cli(home, "service", "list", "-o", "json").stdout)
    ]
    assert "doomed-one" not in names and "doomed-two" not in names


def test_apply_uses_the_cluster_named_with_c(home: Path, tmp_path: Path) -> None:
    fdl = write_fdl(tmp_path / "fdl", [_service("elsewhere")], {"script.sh": SCRIPT})

    result = run_cli(home, "apply", str(fdl), "-c", "missing")

    assert result.returncode == exit_codes.EXIT_CONFIG
    assert "'missing' is not configured" in result.stderr
