"""`oscar cluster …` and the error contract, through the installed entry point."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from oscarpy.cli import exit_codes
from tests.support.cli import run_cli
from tests.support.server import RunningServer, free_port


@pytest.fixture(scope="module")
def server(wire_server: RunningServer) -> RunningServer:
    return wire_server


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_add_writes_a_private_config_file_in_oscar_cli_format(home: Path) -> None:
    result = run_cli(
        home, "cluster", "add", "prod", "https://oscar.example.org/", "alice", "s3cr3t"
    )

    assert result.returncode == 0, result.stderr
    path = home / ".oscar" / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = yaml.safe_load(path.read_text())
    assert document["default"] == "prod"
    assert document["oscar"]["prod"] == {
        "endpoint": "https://oscar.example.org",
        "auth_user": "alice",
        "auth_password": "s3cr3t",
        "ssl_verify": True,
        "memory": "256Mi",
        "log_level": "INFO",
    }


def test_list_shows_clusters_and_default_but_never_passwords(home: Path) -> None:
    run_cli(home, "cluster", "add", "one", "http://127.0.0.1:1", "u1", "password-one")
    run_cli(
        home, "cluster", "add", "two", "http://127.0.0.1:2", "u2", "password-two", "--disable-ssl"
    )

    table = run_cli(home, "cluster", "list")
    listing = run_cli(home, "cluster", "list", "-o", "json")

    assert table.returncode == 0
    assert "one" in table.stdout and "two" in table.stdout
    assert "password" not in table.stdout + listing.stdout
    records = {record["id"]: record for record in json.loads(listing.stdout)}
    assert records["one"]["default"] is True and records["two"]["default"] is False
    assert records["two"]["ssl_verify"] is False


def test_default_and_remove(home: Path) -> None:
    run_cli(home, "cluster", "add", "one", "http://127.0.0.1:1", "u", "p")
    run_cli(home, "cluster", "add", "two", "http://127.0.0.1:2", "u", "p")

    assert run_cli(home, "cluster", "default", "-s", "two").returncode == 0
    assert run_cli(home, "cluster", "default").stdout.strip() == "two"
    unknown = run_cli(home, "cluster", "default", "-s", "three")
    assert unknown.returncode == exit_codes.EXIT_CONFIG
    assert "three" in unknown.stderr

    assert run_cli(home, "cluster", "remove", "two").returncode == 0
    document = yaml.safe_load((home / ".oscar" / "config.yaml").read_text())
    assert list(document["oscar"]) == ["one"]
    assert "default" not in document
    # One cluster left and no default: it is the one commands use.
    assert run_cli(home, "cluster", "info").stderr.count("127.0.0.1:1") == 1


def test_password_stdin_and_info_against_a_real_server(home: Path, server: RunningServer) -> None:
    added = run_cli(
        home,
        "cluster",
        "add",
        "local",
        server.url,
        "oscar",
        "--password-stdin",
        input=server.password + "\n",
    )
    info = run_cli(home, "cluster", "info", "-o", "json")

    assert added.returncode == 0, added.stderr
    assert info.returncode == 0, info.stderr
    details = json.loads(info.stdout)
    assert details["cluster"] == "local" and details["endpoint"] == server.url
    assert details["version"]  # from /system/info
    stored = yaml.safe_load((home / ".oscar" / "config.yaml").read_text())
    assert stored["oscar"]["local"]["auth_password"] == server.password


def test_wrong_password_is_one_line_and_exit_code_unauthorized(
    home: Path, server: RunningServer
) -> None:
    run_cli(home, "cluster", "add", "local", server.url, "oscar", "not-the-password")

    result = run_cli(home, "cluster", "info")

    assert result.returncode == exit_codes.EXIT_UNAUTHORIZED
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "credentials" in result.stderr and "Traceback" not in result.stderr
    assert "not-the-password" not in result.stderr


def test_unreachable_endpoint(home: Path) -> None:
    run_cli(home, "cluster", "add", "gone", f"http://127.0.0.1:{free_port()}", "u", "p")

    result = run_cli(home, "service", "list")

    assert result.returncode == exit_codes.EXIT_UNREACHABLE
    assert "cannot reach" in result.stderr and "connection refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(home: Path) -> None:
    run_cli(home, "cluster", "add", "gone", f"http://127.0.0.1:{free_port()}", "u", "p")

    result = run_cli(home, "--debug", "cluster", "info")

    assert result.returncode == exit_codes.EXIT_UNREACHABLE
    assert "Traceback" in result.stderr


def test_reads_oscar_cli_config_when_ours_is_absent(home: Path, server: RunningServer) -> None:
    legacy = home / ".oscar-cli" / "config.yaml"
    legacy.parent.mkdir()
    legacy.write_text(
        yaml.safe_dump(
            {
                "oscar": {
                    "legacy": {
                        "endpoint": server.url,
                        "auth_user": "oscar",
                        "auth_password": server.password,
                        "ssl_verify": True,
                        "memory": "256Mi",
                        "log_level": "INFO",
                    }
                },
                "default": "legacy",
            }
        )
    )

    info = run_cli(home, "cluster", "info", "-o", "json")
    added = run_cli(home, "cluster", "add", "other", "http://127.0.0.1:1", "u", "p")

    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["cluster"] == "legacy"
    assert added.returncode == 0
    # Saving writes our own file with both clusters and leaves oscar-cli's untouched.
    ours = yaml.safe_load((home / ".oscar" / "config.yaml").read_text())
    assert set(ours["oscar"]) == {"legacy", "other"} and ours["default"] == "legacy"
    assert "other" not in legacy.read_text()


def test_oscar_config_variable_chooses_the_file(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "clusters.yaml"

    run_cli(
        home, "cluster", "add", "x", "http://127.0.0.1:1", "u", "p", env={"OSCAR_CONFIG": str(path)}
    )

    assert "x" in yaml.safe_load(path.read_text())["oscar"]
    assert not (home / ".oscar").exists()


def test_falls_back_to_the_local_server_without_configured_clusters(
    home: Path, server: RunningServer
) -> None:
    result = run_cli(
        home, "cluster", "info", "-o", "json", env={"OSCAR_DATA_DIR": str(server.data_dir)}
    )

    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    assert details["cluster"] == "local" and details["endpoint"] == server.url


def test_no_cluster_and_no_local_server_says_what_to_do(home: Path) -> None:
    result = run_cli(home, "service", "list")

    assert result.returncode == exit_codes.EXIT_CONFIG
    assert "oscar cluster add" in result.stderr and "oscar serve" in result.stderr


def test_bad_config_file_is_reported_with_its_path(home: Path) -> None:
    path = home / ".oscar" / "config.yaml"
    path.parent.mkdir()
    path.write_text("oscar: [unclosed\n")

    result = run_cli(home, "cluster", "list")

    assert result.returncode == exit_codes.EXIT_CONFIG
    assert str(path) in result.stderr and "Traceback" not in result.stderr


def test_add_without_a_password_outside_a_terminal_is_refused(home: Path) -> None:
    missing = run_cli(home, "cluster", "add", "x", "http://127.0.0.1:1", "u", input="")
    both = run_cli(
        home, "cluster", "add", "x", "http://127.0.0.1:1", "u", "p", "--password-stdin", input="p"
    )
    bad_endpoint = run_cli(home, "cluster", "add", "x", "127.0.0.1:1", "u", "p")

    assert missing.returncode == exit_codes.EXIT_USAGE and "--password-stdin" in missing.stderr
    assert both.returncode == exit_codes.EXIT_USAGE
    assert bad_endpoint.returncode == exit_codes.EXIT_USAGE and "http://" in bad_endpoint.stderr
    assert not (home / ".oscar").exists()


def test_oidc_clusters_send_their_token(home: Path, server: RunningServer) -> None:
    config = home / ".oscar" / "config.yaml"
    config.parent.mkdir()
    config.write_text(
        f"oscar:\n  egi:\n    endpoint: {server.url}\n    oidc_token: not-valid-here\n"
    )

    result = run_cli(home, "cluster", "info")

    # oscar-py has no OIDC: the token reaches it and is refused, with a message that says so.
    assert result.returncode == exit_codes.EXIT_UNAUTHORIZED
    assert "rejected the OIDC token" in result.stderr
