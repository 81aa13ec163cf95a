"""`Supervisor.run` against the fake runtime: staging, the contract, limits, cancellation and
outcome mapping, in milliseconds.

The runtime is `oscarpy.engine.runtimes.fake` (a test double of the `Runtime` protocol) and the
storage a dictionary behind the `StorageProvider` protocol: these tests are about what the
supervisor decides; the real-Docker tests (tests/integration/test_jobs_*.py) prove the same
flow end to end.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oscarpy.engine import contract, supervisor
from oscarpy.engine.errors import ContainerError, ImageUnavailable, RuntimeUnavailable
from oscarpy.engine.logstream import LogLine
from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
from oscarpy.engine.runtimes.base import Limits, RunSpec
from oscarpy.engine.runtimes.fake import Behaviour, FakeExecution, FakeRuntime
from oscarpy.engine.spec import JobSpec, StorageTarget, StoredInput
from oscarpy.engine.supervisor import StartedExecution, Supervisor
from oscarpy.storage.providers.base import ObjectInfo, StorageError, StorageProvider


class DictProvider:
    """Objects in a dictionary; `fail` makes every call raise `StorageError`."""

    def __init__(self, objects: dict[tuple[str, str], bytes] | None = None) -> None:
        self.objects = dict(objects or {})
        self.uploaded: dict[tuple[str, str], bytes] = {}
        self.fail = False

    def download(self, bucket: str, key: str, destination: Path) -> ObjectInfo:
        if self.fail or (bucket, key) not in self.objects:
            raise StorageError(f"no object {bucket}/{key}")
        destination.write_bytes(self.objects[bucket, key])
        return ObjectInfo(bucket, key, len(self.objects[bucket, key]), "etag")

    def upload(
        self, bucket: str, key: str, source: Path, content_type: str | None = None
    ) -> ObjectInfo:
        if self.fail:
            raise StorageError("storage is down")
        self.uploaded[bucket, key] = source.read_bytes()
        return ObjectInfo(bucket, key, source.stat().st_size, "etag")

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(())

    def ensure_bucket(self, bucket: str) -> None:
        pass


@dataclass
class Reporter:
    executions: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    outcomes: list[AttemptOutcome] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    ended_with: StartedExecution | None = None

    def started(
        self, job_id: str, attempt: int, execution_id: str, node: str | None = None
    ) -> None:
        self.executions.append(execution_id)
        if node is not None:
            self.placed(job_id, attempt, node)

    def placed(self, job_id: str, attempt: int, node: str) -> None:
        self.nodes.append(node)

    def log(self, job_id: str, lines: Sequence[LogLine]) -> None:
        self.lines += [text for _at, text in lines]

    def finished(
        self,
        job_id: str,
        attempt: int,
        outcome: AttemptOutcome,
        lines: Sequence[LogLine] = (),
        started: StartedExecution | None = None,
    ) -> None:
        self.lines += [text for _at, text in lines]
        self.outcomes.append(outcome)
        self.ended_with = started
        if started is not None:
            self.started(job_id, attempt, started.execution_id, started.node)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class Harness:
    def __init__(self, root: Path, *behaviours: Behaviour) -> None:
        self.runtime = FakeRuntime(*behaviours)
        self.reporter = Reporter()
        self.provider = DictProvider({("in", "photos/cat.png"): b"PNG data"})
        self.work_root = root / "jobs"
        self.work_root.mkdir()
        self.supervisor = Supervisor(self.runtime, self.reporter, self.work_root)

    def providers(self, name: str) -> StorageProvider:
        return self.provider

    def run(self, spec: JobSpec, cancelled: threading.Event | None = None) -> AttemptOutcome:
        return self.supervisor.run(spec, self.providers, cancelled=cancelled)


def job(**changes: object) -> JobSpec:
    values: dict[str, object] = {
        "job_id": "job-1",
        "attempt": 1,
        "service": "svc",
        "image": "busybox",
        "script": "echo hello",
        "event": '{"Key": "in/photos/cat.png"}',
        "input": StoredInput("minio.default", "in", "photos/cat.png"),
        "event_time": "2026-01-01T00:00:00Z",
        "environment": {"GREETING": "hi", "API_KEY": "s3cret-value"},
        "token": "service-token",
        "outputs": (StorageTarget("minio.default", "out", "results", (), (".txt",)),),
    }
    values.update(changes)
    return JobSpec(**values)  # type: ignore[arg-type]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_a_job_stages_in_runs_with_the_contract_and_uploads_matching_outputs(
    harness: Harness,
) -> None:
    seen: dict[str, object] = {}

    def look(spec: RunSpec) -> None:
        seen["input"] = Path(spec.environment["INPUT_FILE_PATH"]).read_bytes()
        seen["script"] = (spec.work_dir / spec.script).read_text()
        seen["environment"] = dict(spec.environment)
        seen["modes"] = {
            name: os.stat(spec.work_dir / name).st_mode & 0o7777
            for name in ("input", "output", "tmp", "script.sh", "input/cat.png")
        }

    harness.runtime.queue(
        Behaviour(
            output=b"working\n",
            writes={"output/a.txt": b"A", "output/sub/b.txt": b"B", "output/skip.log": b"L"},
            action=look,
        )
    )

    outcome = harness.run(job())

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.message == "script exited with 0; 2 output file(s) uploaded"
    assert harness.provider.uploaded == {
        ("out", "results/a.txt"): b"A",
        ("out", "results/sub/b.txt"): b"B",
    }
    assert seen["input"] == b"PNG data"
    assert seen["script"] == "echo hello"
    environment = seen["environment"]
    assert isinstance(environment, dict)
    work = harness.work_root / "job-1.1"
    assert environment["INPUT_FILE_PATH"] == f"{work}/input/cat.png"
    assert environment["TMP_OUTPUT_DIR"] == f"{work}/output"
    assert environment["TMPDIR"] == f"{work}/tmp"
    assert environment["EVENT"] == '{"Key": "in/photos/cat.png"}'
    assert environment["STORAGE_OBJECT_KEY"] == "photos/cat.png"
    assert environment["OSCAR_SERVICE_TOKEN"] == "service-token"
    assert environment["GREETING"] == "hi"
    # Readable and writable by a script running as any user; nothing more.
    assert seen["modes"] == {
        "input": 0o755,
        "output": 0o1777,
        "tmp": 0o1777,
        "script.sh": 0o644,
        "input/cat.png": 0o644,
    }
    assert "working" in harness.reporter.text
    assert "output skip.log matches no output path; not uploaded" in harness.reporter.text
    assert harness.reporter.outcomes == [outcome]
    assert harness.reporter.executions == [harness.runtime.executions[0].id]
    # Nothing is left: neither the work directory, nor the copy of the outputs, nor the execution.
    assert list(harness.work_root.iterdir()) == []
    execution = harness.runtime.executions[0]
    assert isinstance(execution, FakeExecution) and execution.removed


def test_a_request_body_is_the_input_and_stays_for_a_retry(
    harness: Harness, tmp_path: Path
) -> None:
    body = tmp_path / "body"
    body.write_bytes(b"\x00binary body")
    seen: list[bytes] = []
    harness.runtime.queue(
        Behaviour(
            action=lambda spec: seen.append(Path(spec.environment["INPUT_FILE_PATH"]).read_bytes())
        )
    )

    outcome = harness.run(job(input=None, body_path=body, event=""))

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert seen == [b"\x00binary body"]
    assert harness.runtime.started[0].environment["INPUT_FILE_PATH"].endswith("/input/event_file")
    assert "EVENT" in harness.runtime.started[0].environment
    assert body.read_bytes() == b"\x00binary body"


def test_a_large_event_reaches_the_script_only_as_a_file(harness: Harness) -> None:
    event = "x" * (contract.MAX_EVENT_TEXT + 1)
    harness.run(job(event=event))
    environment = harness.runtime.started[0].environment
    assert "EVENT" not in environment
    assert environment["EVENT_FILE_PATH"].endswith("/event.json")


@pytest.mark.parametrize(
    ("behaviour", "kind", "reason", "exit_code"),
    [
        (Behaviour(exit_code=3), OutcomeKind.SCRIPT_FAILED, "exit", 3),
        (Behaviour(exit_code=137), OutcomeKind.SCRIPT_FAILED, "signal", 137),
        (Behaviour(oom=True), OutcomeKind.INFRASTRUCTURE_FAILED, "oom", 137),
        (
            Behaviour(start_error=ContainerError("refused")),
            OutcomeKind.INFRASTRUCTURE_FAILED,
            "container",
            None,
        ),
        (
            Behaviour(prepare_error=ImageUnavailable("no such image")),
            OutcomeKind.INFRASTRUCTURE_FAILED,
            "image",
            None,
        ),
        (
            Behaviour(wait_error=RuntimeUnavailable("daemon gone")),
            OutcomeKind.INFRASTRUCTURE_FAILED,
            "runtime",
            None,
        ),
    ],
)
def test_how_an_execution_ends_decides_the_outcome_and_nothing_is_uploaded(
    harness: Harness, behaviour: Behaviour, kind: OutcomeKind, reason: str, exit_code: int | None
) -> None:
    behaviour.writes = {"output/a.txt": b"partial"}
    harness.runtime.queue(behaviour)

    outcome = harness.run(job())

    assert (outcome.kind, outcome.reason, outcome.exit_code) == (kind, reason, exit_code)
    assert harness.provider.uploaded == {}
    assert harness.reporter.outcomes == [outcome]
    assert list(harness.work_root.iterdir()) == []


def test_a_script_past_its_timeout_fails_with_reason_timeout(harness: Harness) -> None:
    harness.runtime.queue(Behaviour(hang=True))
    outcome = harness.run(job(timeout=0.05))
    assert (outcome.kind, outcome.reason) == (OutcomeKind.SCRIPT_FAILED, "timeout")


def test_an_input_that_cannot_be_staged_fails_before_anything_starts(harness: Harness) -> None:
    harness.provider.fail = True
    outcome = harness.run(job())
    assert (outcome.kind, outcome.reason) == (OutcomeKind.INFRASTRUCTURE_FAILED, "staging")
    assert harness.runtime.started == []
    assert list(harness.work_root.iterdir()) == []


def test_outputs_that_cannot_be_uploaded_fail_the_attempt_as_staging(harness: Harness) -> None:
    def storage_down(spec: RunSpec) -> None:
        harness.provider.fail = True

    harness.runtime.queue(Behaviour(writes={"output/a.txt": b"A"}, action=storage_down))
    outcome = harness.run(job())
    assert (outcome.kind, outcome.reason) == (OutcomeKind.INFRASTRUCTURE_FAILED, "staging")


def test_a_job_cancelled_before_its_execution_starts_never_starts(harness: Harness) -> None:
    cancelled = threading.Event()
    cancelled.set()
    outcome = harness.run(job(), cancelled)
    assert (outcome.kind, outcome.reason) == (OutcomeKind.SCRIPT_FAILED, "cancelled")
    assert harness.runtime.started == []


def test_a_running_job_that_is_cancelled_is_killed_and_ends_cancelled(harness: Harness) -> None:
    cancelled = threading.Event()

    def cancel_soon(spec: RunSpec) -> None:
        # What `Engine` does when a running job is deleted: flag it, remove its execution.
        cancelled.set()
        threading.Timer(0.01, harness.runtime.remove_job, [spec.job_id]).start()

    harness.runtime.queue(Behaviour(hang=True, action=cancel_soon))
    outcome = harness.run(job(), cancelled)
    assert (outcome.kind, outcome.reason) == (OutcomeKind.SCRIPT_FAILED, "cancelled")
    assert harness.provider.uploaded == {}


def test_a_script_that_writes_past_the_disk_limit_is_killed(harness: Harness) -> None:
    harness.runtime.queue(Behaviour(writes={"tmp/big": b"x" * 200_000}, hang=True))
    outcome = harness.run(job(limits=Limits(disk_bytes=100_000)))
    assert (outcome.kind, outcome.reason) == (OutcomeKind.SCRIPT_FAILED, "disk")
    execution = harness.runtime.executions[0]
    assert isinstance(execution, FakeExecution) and execution.kills == 1


def test_the_staged_input_does_not_count_against_the_disk_limit(harness: Harness) -> None:
    harness.provider.objects["in", "photos/cat.png"] = b"x" * 200_000
    outcome = harness.run(job(limits=Limits(disk_bytes=100_000)))
    assert outcome.kind is OutcomeKind.SUCCEEDED


def test_a_script_that_prints_past_the_flood_limit_is_killed(harness: Harness) -> None:
    harness.runtime.queue(Behaviour(output=b"y" * 5000, hang=True))
    outcome = harness.run(job(limits=Limits(output_bytes=1000)))
    assert (outcome.kind, outcome.reason) == (OutcomeKind.SCRIPT_FAILED, "log_flood")


def test_links_in_the_output_are_never_followed(harness: Harness, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("root only")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stolen.txt").write_text("root only too")

    def plant(spec: RunSpec) -> None:
        output = spec.work_dir / "output"
        (output / "leak.txt").symlink_to(secret)
        (output / "dir").symlink_to(outside)
        (output / "real.txt").write_text("mine")

    harness.runtime.queue(Behaviour(action=plant))
    outcome = harness.run(job())

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert harness.provider.uploaded == {("out", "results/real.txt"): b"mine"}
    assert "skipped symbolic link leak.txt" in harness.reporter.text
    assert "skipped symbolic link dir" in harness.reporter.text


def test_an_output_directory_replaced_by_a_link_uploads_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "stolen.txt").write_text("root only")

    def swap(spec: RunSpec) -> None:
        output = spec.work_dir / "output"
        output.rmdir()
        output.symlink_to(outside)

    harness.runtime.queue(Behaviour(action=swap))
    outcome = harness.run(job())
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert harness.provider.uploaded == {}


def test_a_work_directory_left_by_an_interrupted_attempt_is_replaced(harness: Harness) -> None:
    stale = harness.supervisor.work_dir("job-1", 1)
    (stale / "output").mkdir(parents=True)
    (stale / "output" / "old.txt").write_text("from the crashed attempt")
    outcome = harness.run(job())
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert harness.provider.uploaded == {}


def test_an_execution_that_cannot_be_removed_is_removed_later(harness: Harness) -> None:
    harness.runtime.queue(Behaviour(remove_error=RuntimeUnavailable("daemon busy")))
    outcome = harness.run(job())
    assert outcome.kind is OutcomeKind.SUCCEEDED
    execution = harness.runtime.executions[0]
    assert isinstance(execution, FakeExecution) and not execution.removed
    assert harness.supervisor.retry_removals() == 0
    assert execution.removed


def test_the_real_script_runs_through_the_fake_runtime_when_asked(harness: Harness) -> None:
    harness.runtime.queue(Behaviour(run_script=True))
    spec = job(script='cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/copy.txt"; echo "$GREETING"')
    outcome = harness.run(spec)
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert harness.provider.uploaded == {("out", "results/copy.txt"): b"PNG data"}
    assert "hi" in harness.reporter.lines


def test_an_attempt_of_a_local_runtime_is_recorded_on_this_machine(harness: Harness) -> None:
    harness.runtime.queue(Behaviour())

    harness.run(job())

    assert harness.reporter.nodes == [socket.gethostname()]


def test_a_short_attempt_reports_its_execution_with_its_end_a_long_one_while_it_runs(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short job costs one state DB write at its end, not one more for its container; a job
    still running after `RECORD_AFTER_SECONDS` shows its container and node while it runs."""
    harness.runtime.queue(Behaviour())
    harness.run(job())
    short = harness.runtime.executions[0]
    assert harness.reporter.ended_with == StartedExecution(short.id, socket.gethostname())

    monkeypatch.setattr(supervisor, "RECORD_AFTER_SECONDS", 0.05)
    seen_while_running: list[str] = []

    def run_a_while(_spec: RunSpec) -> None:
        deadline = time.monotonic() + 5
        while not harness.reporter.executions[1:] and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_while_running.extend(harness.reporter.executions[1:])

    harness.runtime.queue(Behaviour(action=run_a_while))
    harness.run(job(attempt=2))
    long = harness.runtime.executions[1]
    assert seen_while_running == [long.id]
    assert harness.reporter.ended_with is None  # not recorded twice
    assert harness.reporter.executions == [short.id, long.id]
