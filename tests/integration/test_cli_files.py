"""`oscar service put-file|get-file|list-files|delete-file` over the server's S3 API."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from oscarpy.cli import exit_codes
from tests.support.cli import TEST_IMAGE, run_cli, write_fdl
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def server(wire_server: RunningServer) -> RunningServer:
    return wire_server


@dataclass
class Cli:
    home: Path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.home, *args, timeout=120)


@pytest.fixture(scope="module")
def oscar(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> Cli:
    """A user with the server as default cluster and a service `files` (files/in → files/out)."""
    cli = Cli(tmp_path_factory.mktemp("cli-files-home"))
    added = run_cli(cli.home, "cluster", "add", "test", server.url, "oscar", server.password)
    assert added.returncode == 0, added.stderr
    service: dict[str, object] = {
        "name": "files",
        "image": TEST_IMAGE,
        "script": "script.sh",
        "input": [{"storage_provider": "minio.default", "path": "files/in"}],
        "output": [{"storage_provider": "minio.default", "path": "files/out"}],
    }
    fdl = write_fdl(cli.home / "fdl", [service], {"script.sh": "#!/bin/sh\ntrue\n"})
    applied = cli("apply", str(fdl))
    assert applied.returncode == 0, applied.stderr
    return cli


def _paths(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [entry["path"] for entry in json.loads(result.stdout)]


def test_put_defaults_to_the_first_input_and_lists_there(oscar: Cli, tmp_path: Path) -> None:
    sample = tmp_path / "hello.txt"
    sample.write_text("hello")

    put = oscar("service", "put-file", "files", str(sample))

    assert put.returncode == 0, put.stderr
    assert "files/in/hello.txt" in put.stderr
    assert "files/in/hello.txt" in _paths(
        oscar("service", "list-files", "files", "files/in", "-o", "json")
    )
    table = oscar("service", "list-files", "files", "minio.default", "files/in")
    assert "files/in/hello.txt" in table.stdout and "5 B" in table.stdout


def test_get_file_to_a_path_a_directory_and_stdout(oscar: Cli, tmp_path: Path) -> None:
    sample = tmp_path / "result.txt"
    sample.write_text("the result\n")
    oscar("service", "put-file", "files", str(sample), "files/out/result.txt")
    (tmp_path / "into").mkdir()

    to_path = oscar("service", "get-file", "files", "files/out/result.txt", str(tmp_path / "r.txt"))
    to_directory = oscar(
        "service", "get-file", "files", "files/out/result.txt", str(tmp_path / "into")
    )
    to_stdout = oscar("service", "get-file", "files", "minio.default", "files/out/result.txt", "-")

    assert to_path.returncode == 0, to_path.stderr
    assert to_directory.returncode == 0, to_directory.stderr
    assert (tmp_path / "r.txt").read_text() == "the result\n"
    assert (tmp_path / "into" / "result.txt").read_text() == "the result\n"
    assert to_stdout.stdout == "the result\n"


def test_list_files_defaults_to_the_first_output(oscar: Cli, tmp_path: Path) -> None:
    sample = tmp_path / "listed.txt"
    sample.write_text("x")
    oscar("service", "put-file", "files", str(sample), "files/out/")

    assert "files/out/listed.txt" in _paths(oscar("service", "list-files", "files", "-o", "json"))


def test_download_latest_into(oscar: Cli, tmp_path: Path) -> None:
    for name in ("older.txt", "newer.txt"):
        (tmp_path / name).write_text(name)
        oscar("service", "put-file", "files", str(tmp_path / name), "files/latest/")
    target = tmp_path / "latest"

    result = oscar(
        "service", "get-file", "files", "files/latest", "--download-latest-into", str(target)
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(target / "newer.txt")
    assert (target / "newer.txt").read_text() == "newer.txt"


def test_directory_upload_keeps_relative_paths(oscar: Cli, tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    (batch / "nested").mkdir(parents=True)
    (batch / "a.txt").write_text("a")
    (batch / "nested" / "b.txt").write_text("b")

    result = oscar("service", "put-file", "files", str(batch), "files/batch/")

    assert result.returncode == 0, result.stderr
    assert sorted(_paths(oscar("service", "list-files", "files", "files/batch", "-o", "json"))) == [
        "files/batch/a.txt",
        "files/batch/nested/b.txt",
    ]


def test_big_files_round_trip_with_and_without_progress(oscar: Cli, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))

    shown = oscar("service", "put-file", "files", str(big), "files/big/shown.bin")
    quiet = oscar("service", "put-file", "files", "--no-progress", str(big), "files/big/quiet.bin")
    back = oscar("service", "get-file", "files", "files/big/shown.bin", str(tmp_path / "back.bin"))

    assert shown.returncode == 0 and quiet.returncode == 0, shown.stderr + quiet.stderr
    assert "3.0/3.0 MiB" in shown.stderr  # the progress bar of a transfer over 1 MiB
    assert "MiB" not in quiet.stderr
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()


def test_small_files_show_no_progress_bar(oscar: Cli, tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 1000)

    result = oscar("service", "put-file", "files", str(small), "files/small/")

    assert result.returncode == 0 and "━" not in result.stderr


def test_delete_file_and_what_does_not_exist(oscar: Cli, tmp_path: Path) -> None:
    sample = tmp_path / "gone.txt"
    sample.write_text("bye")
    oscar("service", "put-file", "files", str(sample), "files/staging/gone.txt")

    deleted = oscar("service", "delete-file", "files", "files/staging/gone.txt")
    again = oscar("service", "delete-file", "files", "files/staging/gone.txt")
    missing = oscar("service", "get-file", "files", "files/staging/gone.txt", "-")
    no_local = oscar("service", "put-file", "files", str(tmp_path / "nope.txt"))
    no_service = oscar("service", "put-file", "nope", str(sample))
    bad_provider = oscar("service", "list-files", "files", "minio.other", "files/in")

    assert deleted.returncode == 0, deleted.stderr
    assert _paths(oscar("service", "list-files", "files", "files/staging", "-o", "json")) == []
    assert again.returncode == exit_codes.EXIT_NOT_FOUND
    assert missing.returncode == exit_codes.EXIT_NOT_FOUND and missing.stdout == ""
    assert no_local.returncode == exit_codes.EXIT_USAGE and "nope.txt" in no_local.stderr
    assert no_service.returncode == exit_codes.EXIT_NOT_FOUND
    assert bad_provider.returncode == exit_codes.EXIT_USAGE
    assert "'minio.other' is not defined" in bad_provider.stderr


def test_file_commands_on_a_webdav_provider_of_ones_own_service(oscar: Cli, tmp_path: Path) -> None:
    """The owner gets the provider's password in the service's answer, so the file commands
    reach its WebDAV server (a real WsgiDAV on loopback) as oscar_python's storage client does."""
    from tests.support.webdav import webdav_server

    with webdav_server(tmp_path / "dav") as dav:
        service: dict[str, object] = {
            "name": "davfiles",
            "image": TEST_IMAGE,
            "script": "script.sh",
            "input": [{"storage_provider": "webdav.d", "path": "Top/in"}],
            "storage_providers": {"webdav": {"d": dav.provider()}},
        }
        fdl = write_fdl(tmp_path / "fdl", [service], {"script.sh": "#!/bin/sh\ntrue\n"})
        assert oscar("apply", str(fdl)).returncode == 0
        sample = tmp_path / "note.txt"
        sample.write_text("on dav")

        put = oscar("service", "put-file", "davfiles", "webdav.d", str(sample), "Top/in/a/n.txt")
        assert put.returncode == 0, put.stderr
        assert (dav.root / "Top/in/a/n.txt").read_text() == "on dav"
        listed = oscar("service", "list-files", "davfiles", "webdav.d", "Top/in", "-o", "json")
        assert _paths(listed) == ["Top/in/a/n.txt"]
        got = oscar("service", "get-file", "davfiles", "webdav.d", "Top/in/a/n.txt", "-")
        assert got.returncode == 0 and got.stdout == "on dav", got.stderr
        deleted = oscar("service", "delete-file", "davfiles", "webdav.d", "Top/in/a/n.txt")
        assert deleted.returncode == 0, deleted.stderr
        assert not (dav.root / "Top/in/a/n.txt").exists()
        assert oscar("delete", str(fdl)).returncode == 0
