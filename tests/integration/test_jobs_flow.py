"""Upload → job → outputs, on the real Docker Engine, with the engine in process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from oscarpy.engine.records import JobStatus
from tests.support.jobs import Harness, running_engine, unique

pytestmark = pytest.mark.docker

UPPER = 'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"\n'


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> Iterator[Harness]:
    with running_engine(tmp_path_factory.mktemp("jobs") / "data") as harness:
        yield harness


def test_an_uploaded_file_is_transformed_into_the_output_folder(platform: Harness) -> None:
    bucket = unique("flow")
    service = platform.service(
        script="echo processing $STORAGE_OBJECT_KEY\n" + UPPER,
        input=[{"path": f"{bucket}/in"}],
        output=[{"path": f"{bucket}/out"}],
    )
    platform.put(bucket, "in/deep/hello.txt", b"hello world\n")

    assert platform.object_appears(bucket, "out/hello.txt") == b"HELLO WORLD\n"
    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED
    assert job.exit_code == 0 and job.attempts == 1 and job.key == "in/deep/hello.txt"
    log = platform.engine.ledger.read_log(job.id)
    assert "processing in/deep/hello.txt" in log
    assert f"uploaded hello.txt to minio.default {bucket}/out/hello.txt" in log


def test_a_chain_of_two_services_produces_both_outputs(platform: Harness) -> None:
    bucket = unique("chain")
    first = platform.service(
        script=UPPER, input=[{"path": f"{bucket}/a"}], output=[{"path": f"{bucket}/b"}]
    )
    second = platform.service(
        script='rev < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"\n',
        input=[{"path": f"{bucket}/b"}],
        output=[{"path": f"{bucket}/c"}],
    )
    platform.put(bucket, "a/x.txt", b"abc\n")

    assert platform.object_appears(bucket, "c/x.txt") == b"CBA\n"
    assert platform.read(bucket, "b/x.txt") == b"ABC\n"
    assert len(platform.jobs(first.name)) == 1
    assert len(platform.jobs(second.name)) == 1


def test_outputs_fan_out_by_suffix_and_keep_subfolders(platform: Harness) -> None:
    bucket = unique("fan")
    service = platform.service(
        script=(
            'mkdir -p "$TMP_OUTPUT_DIR/sub"\n'
            'wc -c < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/size.txt"\n'
            'echo a,b > "$TMP_OUTPUT_DIR/sub/table.csv"\n'
            'echo skipped > "$TMP_OUTPUT_DIR/other.bin"\n'
        ),
        input=[{"path": f"{bucket}/in"}],
        output=[
            {"path": f"{bucket}/text", "suffix": [".txt"]},
            {"path": f"{bucket}/tables", "suffix": [".csv"]},
        ],
    )
    platform.put(bucket, "in/f", b"12345")

    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED
    assert platform.read(bucket, "text/size.txt") == b"5\n"
    assert platform.read(bucket, "tables/sub/table.csv") == b"a,b\n"
    assert platform.read(bucket, "text/sub/table.csv") is None
    assert platform.read(bucket, "tables/other.bin") is None
    assert "other.bin matches no output path" in platform.engine.ledger.read_log(job.id)


def test_input_prefix_and_suffix_filters_and_folder_markers(platform: Harness) -> None:
    bucket = unique("filter")
    service = platform.service(
        script="true\n", input=[{"path": f"{bucket}/in", "suffix": [".jpg"]}]
    )
    platform.put(bucket, "in/photo.jpg", b"x")
    platform.put(bucket, "in/notes.txt", b"x")
    platform.put(bucket, "in/sub/", b"")
    platform.put(bucket, "elsewhere/photo.jpg", b"x")
    # Control: the intake takes events in order, so once the job of this last file exists it
    # has seen every file above.
    platform.put(bucket, "in/last.jpg", b"x")

    jobs = platform.finished_jobs(service.name, 2)
    assert sorted(str(job.key) for job in jobs) == ["in/last.jpg", "in/photo.jpg"]
    assert len(platform.jobs(service.name)) == 2


def test_a_script_that_writes_nothing_succeeds_and_says_so(platform: Harness) -> None:
    bucket = unique("empty")
    service = platform.service(script="echo nothing to do\n", input=[{"path": f"{bucket}/in"}])
    platform.put(bucket, "in/a", b"x")

    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED
    log = platform.engine.ledger.read_log(job.id)
    assert "nothing to do" in log and "wrote no files" in log


def test_the_job_contract_environment(platform: Harness) -> None:
    bucket = unique("env")
    service = platform.service(
        script=(
            'cd "$TMP_OUTPUT_DIR"\nenv | sort > env.txt\ncat "$EVENT_FILE_PATH" > event.json\n'
        ),
        environment={"variables": {"COLOUR": "blue"}, "secrets": {"API_KEY": "s3cr3t-value"}},
        input=[{"path": f"{bucket}/in"}],
        output=[{"path": f"{bucket}/out"}],
    )
    platform.put(bucket, "in/my file.txt", b"x")

    environment = platform.object_appears(bucket, "out/env.txt").decode()
    (job,) = platform.finished_jobs(service.name)
    values = dict(line.split("=", 1) for line in environment.splitlines() if "=" in line)
    assert values["INPUT_FILE_PATH"].endswith("/input/my file.txt")
    assert values["STORAGE_OBJECT_KEY"] == "in/my file.txt"
    assert values["JOB_UUID"] == job.id
    assert values["OSCAR_SERVICE_NAME"] == service.name
    assert values["OSCAR_SERVICE_TOKEN"] == service.token
    # OSCAR's: where an exposed service is reached (none here), and the node that runs the job.
    assert values["OSCAR_SERVICE_BASE_PATH"] == ""
    assert values["RESOURCE_ID"] == socket.gethostname()
    assert values["COLOUR"] == "blue" and values["API_KEY"] == "s3cr3t-value"
    assert values["EVENT_TIME"].endswith("Z")
    event = platform.read(bucket, "out/event.json") or b""
    assert b'"name": "' + bucket.encode() + b'"' in event and b"my%20file.txt" in event
    assert "EVENT" in values


def test_file_stage_in_true_skips_the_download_as_in_oscar(platform: Harness) -> None:
    """OSCAR's `file_stage_in: true` skips the input's download: the script gets the event only
    (a script that fetches the file itself, or only needs its name)."""
    bucket = unique("nostage")
    service = platform.service(
        script=(
            'cd "$TMP_OUTPUT_DIR"\nls -A "$TMP_INPUT_DIR" > listing.txt\n'
            'echo "${INPUT_FILE_PATH-unset} $STORAGE_OBJECT_KEY" > seen.txt\n'
            'echo "$EVENT" > event.json\n'
        ),
        file_stage_in=True,
        input=[{"path": f"{bucket}/in"}],
        output=[{"path": f"{bucket}/out"}],
    )
    platform.put(bucket, "in/big.bin", b"not downloaded")

    assert platform.object_appears(bucket, "out/seen.txt") == b"unset in/big.bin\n"
    assert platform.read(bucket, "out/listing.txt") == b""
    assert b"big.bin" in (platform.read(bucket, "out/event.json") or b"")
    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED


def test_an_exposed_service_gets_oscars_base_path(platform: Harness) -> None:
    bucket = unique("base")
    service = platform.service(
        script='echo "$OSCAR_SERVICE_BASE_PATH" > "$TMP_OUTPUT_DIR/base.txt"\n',
        expose={"api_port": 8080},
        input=[{"path": f"{bucket}/in"}],
        output=[{"path": f"{bucket}/out"}],
    )
    platform.put(bucket, "in/a", b"x")
    expected = f"/system/services/{service.name}/exposed\n".encode()
    assert platform.object_appears(bucket, "out/base.txt") == expected


def test_secrets_printed_by_a_script_are_masked_in_its_log(platform: Harness) -> None:
    bucket = unique("mask")
    service = platform.service(
        script='echo "key is $API_KEY"\n',
        environment={"secrets": {"API_KEY": "very-secret-value-42"}},
        input=[{"path": f"{bucket}/in"}],
    )
    platform.put(bucket, "in/a", b"x")

    (job,) = platform.finished_jobs(service.name)
    log = platform.engine.ledger.read_log(job.id)
    assert "key is ********" in log and "very-secret-value-42" not in log


def test_a_symbolic_link_in_the_output_is_not_followed(platform: Harness, tmp_path: Path) -> None:
    bucket = unique("link")
    service = platform.service(
        script='ln -s /etc/passwd "$TMP_OUTPUT_DIR/passwd"\necho ok > "$TMP_OUTPUT_DIR/ok"\n',
        input=[{"path": f"{bucket}/in"}],
        output=[{"path": f"{bucket}/out"}],
    )
    platform.put(bucket, "in/a", b"x")

    (job,) = platform.finished_jobs(service.name)
    assert job.status is JobStatus.SUCCEEDED
    assert platform.read(bucket, "out/ok") == b"ok\n"
    assert platform.read(bucket, "out/passwd") is None
