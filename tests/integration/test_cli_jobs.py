"""The round trip with the CLI alone: apply, put files, wait, jobs, logs, results, run.

Runs scripts in real containers of the locally built busybox image, against a real
`oscar serve`; one server and one set of services serve the whole module to keep it short.
"""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from oscarpy.cli import exit_codes
from tests.support.cli import TEST_IMAGE, copy_example, run_cli, write_fdl
from tests.support.server import RunningServer

pytestmark = pytest.mark.docker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

WORDS = """#!/bin/sh
name=$(basename "$INPUT_FILE_PATH")
echo "counting $name"
wc -w < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$name.words"
echo "done $name"
"""
FAILS = """#!/bin/sh
echo "about to fail"
exit 3
"""
SLOW = """#!/bin/sh
echo first
sleep 2
echo second
"""
COPY = """#!/bin/sh
cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"
"""


def _service(name: str, script: str) -> dict[str, object]:
    return {
        "name": name,
        "image": TEST_IMAGE,
        "script": script,
        "memory": "64Mi",
        "cpu": "0.1",
        "input": [{"storage_provider": "minio.default", "path": f"{name}/in"}],
        "output": [{"storage_provider": "minio.default", "path": f"{name}/out"}],
    }


@pytest.fixture(scope="module")
def server(wire_server: RunningServer, docker_client: object) -> RunningServer:
    return wire_server


@dataclass
class Cli:
    """The CLI of a user with no cluster configured: it finds the local server by its data
    directory, as on a machine where `oscar serve` runs."""

    home: Path
    data_dir: Path

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(
            self.home, *args, input=input, env={"OSCAR_DATA_DIR": str(self.data_dir)}, timeout=120
        )


@pytest.fixture(scope="module")
def oscar(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> Cli:
    """The CLI, with the module's services applied."""
    cli = Cli(tmp_path_factory.mktemp("cli-jobs-home"), server.data_dir)
    fdl = write_fdl(
        cli.home / "fdl",
        [
            _service("words", "words.sh"),
            _service("fails", "fails.sh"),
            _service("slow", "slow.sh"),
            _service("copier", "copy.sh"),
        ],
        {"words.sh": WORDS, "fails.sh": FAILS, "slow.sh": SLOW, "copy.sh": COPY},
    )
    applied = cli("apply", str(fdl))
    assert applied.returncode == 0, applied.stderr
    return cli


def test_round_trip_put_wait_logs_get(oscar: Cli, tmp_path: Path) -> None:
    text = tmp_path / "poem.txt"
    text.write_text("one two three four\nfive\n")

    put = oscar("service", "put-file", "words", str(text))
    inputs = oscar("service", "list-files", "words", "words/in", "-o", "json")
    waited = oscar("service", "wait", "words", "--expect", "1", "--timeout", "60")
    jobs = oscar("service", "logs", "list", "words", "-o", "json")
    log = oscar("service", "logs", "get", "words", "--latest")
    outputs = oscar("service", "list-files", "words", "-o", "json")
    got = oscar("service", "get-file", "words", "words/out/poem.txt.words", str(tmp_path / "r"))
    latest = oscar("service", "get-file", "words", "--download-latest-into", str(tmp_path / "d"))
    piped = oscar("service", "get-file", "words", "words/out/poem.txt.words", "-")

    assert put.returncode == 0, put.stderr
    assert [entry["path"] for entry in json.loads(inputs.stdout)] == ["words/in/poem.txt"]
    assert waited.returncode == 0, waited.stderr
    assert "succeeded 1" in waited.stderr
    records = json.loads(jobs.stdout)
    assert len(records) == 1 and records[0]["status"].lower() == "succeeded"
    assert records[0]["node"] == socket.gethostname()  # the machine that ran it
    assert "counting poem.txt" in log.stdout and "done poem.txt" in log.stdout
    stamped = oscar("service", "logs", "get", "words", "--latest", "--timestamps")
    assert all(
        line[:4].isdigit() and "T" in line.split()[0] for line in stamped.stdout.splitlines()
    )
    assert [entry["path"] for entry in json.loads(outputs.stdout)] == ["words/out/poem.txt.words"]
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "r").read_text().strip() == "5"
    assert latest.returncode == 0, latest.stderr
    assert (tmp_path / "d" / "poem.txt.words").read_text().strip() == "5"
    assert piped.stdout.strip() == "5"


def test_a_directory_upload_makes_one_job_per_file(oscar: Cli, tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    (batch / "nested").mkdir(parents=True)
    (batch / "a.bin").write_bytes(b"a" * 10)
    (batch / "nested" / "b.bin").write_bytes(b"b" * 10)

    put = oscar("service", "put-file", "copier", str(batch))
    waited = oscar("service", "wait", "copier", "--expect", "2", "--timeout", "90", "-o", "json")
    outputs = oscar("service", "list-files", "copier", "-o", "json")

    assert put.returncode == 0, put.stderr
    assert "copier/in/nested/b.bin" in put.stderr
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["succeeded"] == 2
    assert sorted(entry["path"] for entry in json.loads(outputs.stdout)) == [
        "copier/out/a.bin",
        "copier/out/b.bin",
    ]


def test_failed_jobs_make_wait_fail_and_are_listed(oscar: Cli, tmp_path: Path) -> None:
    sample = tmp_path / "x.txt"
    sample.write_text("x")

    oscar("service", "put-file", "fails", str(sample))
    waited = oscar("service", "wait", "fails", "--expect", "1", "--timeout", "60")
    failed = oscar("service", "logs", "list", "fails", "-s", "failed", "-o", "json")
    log = oscar("service", "logs", "get", "fails")

    assert waited.returncode == exit_codes.EXIT_JOBS_FAILED
    assert "failed 1" in waited.stderr and "Traceback" not in waited.stderr
    records = json.loads(failed.stdout)
    assert len(records) == 1 and "3" in records[0]["reason"]
    assert "about to fail" in log.stdout

    retried = oscar("service", "logs", "retry", "fails", records[0]["name"])
    again = oscar("service", "wait", "fails", "--timeout", "60")

    assert retried.returncode == 0, retried.stderr
    assert "pending again" in retried.stderr
    assert again.returncode == exit_codes.EXIT_JOBS_FAILED
    assert oscar("service", "logs", "retry", "words", "no-such-job").returncode == (
        exit_codes.EXIT_NOT_FOUND
    )


def test_job_prints_its_id_and_follow_streams_until_the_end(oscar: Cli) -> None:
    created = oscar("service", "job", "slow", "-i", "hello")
    job_id = created.stdout.strip()
    followed = oscar("service", "logs", "get", "slow", job_id, "--follow")

    assert created.returncode == 0, created.stderr
    assert job_id
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.index("first") < followed.stdout.index("second")


def test_logs_delete_by_id_succeeded_and_all(oscar: Cli) -> None:
    first = oscar("service", "job", "words", "-i", "a b").stdout.strip()
    oscar("service", "job", "words", "-i", "c d")
    oscar("service", "wait", "words", "--timeout", "60")

    by_id = oscar("service", "logs", "delete", "words", first)
    remaining = json.loads(oscar("service", "logs", "list", "words", "-o", "json").stdout)
    succeeded = oscar("service", "logs", "delete", "words", "--succeeded")
    after = json.loads(oscar("service", "logs", "list", "words", "-o", "json").stdout)
    everything = oscar("service", "logs", "delete", "fails", "--all")
    unknown = oscar("service", "logs", "get", "words", first)
    nothing = oscar("service", "logs", "delete", "words")

    assert by_id.returncode == 0, by_id.stderr
    assert first not in {record["name"] for record in remaining}
    assert succeeded.returncode == 0 and after == []
    assert everything.returncode == 0
    assert json.loads(oscar("service", "logs", "list", "fails", "-o", "json").stdout) == []
    assert unknown.returncode == exit_codes.EXIT_NOT_FOUND
    assert nothing.returncode == exit_codes.EXIT_USAGE


def test_reconcile_answers(oscar: Cli) -> None:
    result = oscar("service", "reconcile", "words", "-o", "json")

    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)


def test_cowsay_example_runs_synchronously(
    oscar: Cli, tmp_path: Path, server: RunningServer
) -> None:
    example = copy_example(EXAMPLES / "cowsay", tmp_path / "cowsay")
    applied = oscar("apply", str(example / "cowsay.yaml"))

    said = oscar("service", "run", "cowsay", "-i", "Hello from oscar-py")
    (tmp_path / "body.txt").write_text("from a file")
    saved = oscar(
        "service",
        "run",
        "cowsay",
        "-f",
        str(tmp_path / "body.txt"),
        "-o",
        str(tmp_path / "said.txt"),
    )

    assert applied.returncode == 0, applied.stderr
    assert said.returncode == 0, said.stderr
    assert "< Hello from oscar-py >" in said.stdout and "(oo)" in said.stdout
    assert saved.returncode == 0, saved.stderr
    assert "< from a file >" in (tmp_path / "said.txt").read_text()


def test_chain_example_passes_files_between_services(oscar: Cli, tmp_path: Path) -> None:
    example = copy_example(EXAMPLES / "chain", tmp_path / "chain")
    assert oscar("apply", str(example / "chain.yaml")).returncode == 0

    oscar("service", "put-file", "shout", str(example / "poem.txt"))
    first = oscar("service", "wait", "shout", "--expect", "1", "--timeout", "60")
    second = oscar("service", "wait", "measure", "--expect", "1", "--timeout", "60")
    counts = oscar("service", "get-file", "measure", "chain/out/poem.txt.count", "-")
    shouted = oscar("service", "get-file", "shout", "chain/shouted/poem.txt", "-")

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert counts.stdout.splitlines() == ["lines 2", "words 12", "bytes 65"]
    assert shouted.stdout.startswith("FILES GO IN, RESULTS COME OUT,")
