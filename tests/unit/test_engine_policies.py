"""Retry policy, event parsing, body decoding, log streaming and input file names."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oscarpy.engine.contract import decode_body_file, input_file_name
from oscarpy.engine.events import parse_object_event, storage_event
from oscarpy.engine.logstream import MAX_LINE, LogLine, LogStream
from oscarpy.engine.retries import RetryPolicy
from oscarpy.engine.runtimes.base import EndReason, result_from_exit
from oscarpy.log import register_secret


def test_backoff_doubles_within_its_jitter_and_stops_at_the_limit() -> None:
    policy = RetryPolicy(limit=3, base_seconds=1, max_seconds=5, jitter=0.1)

    delays = [policy.backoff(failures) for failures in (1, 2, 3, 4)]

    assert 0.9 <= delays[0] <= 1.1 and 1.8 <= delays[1] <= 2.2 and 3.6 <= delays[2] <= 4.4
    assert 4.5 <= delays[3] <= 5.5
    assert policy.allows(3) and not policy.allows(4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"limit": -1}, "retry limit must be 0 or more, not -1"),
        ({"base_seconds": 10, "max_seconds": 1}, "backoff needs 0 <= base"),
        ({"jitter": 2}, "jitter is a fraction between 0 and 1, not 2"),
    ],
)
def test_a_bad_retry_policy_is_refused_with_the_value(
    options: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_exit_statuses_are_named() -> None:
    assert result_from_exit(0).succeeded
    assert result_from_exit(3).message == "script exited with 3"
    assert result_from_exit(137).reason is EndReason.SIGNAL
    assert result_from_exit(137).message == "killed by signal 9"
    assert result_from_exit(-15).message == "killed by signal 15"
    assert result_from_exit(137, oom=True).reason is EndReason.OOM


def test_a_minio_event_names_its_object_with_the_key_decoded() -> None:
    body = json.dumps(
        {
            "Records": [
                {
                    "s3": {
                        "bucket": {"name": "b"},
                        "object": {"key": "in/my+file%281%29.txt", "eTag": '"abc"', "size": 3},
                    }
                }
            ]
        }
    ).encode()

    found = parse_object_event(body)

    assert found is not None
    assert (found.bucket, found.key, found.etag, found.size) == ("b", "in/my file(1).txt", "abc", 3)


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'{"Records": []}', b'{"Records": [{"s3": {}}]}', b"[1]"]
)
def test_other_bodies_are_not_events(body: bytes) -> None:
    assert parse_object_event(body) is None


def test_the_event_we_write_is_one_we_read() -> None:
    text = storage_event("bkt", "a b/c.txt", 7, "e", datetime(2026, 1, 2, tzinfo=UTC))

    found = parse_object_event(text.encode())

    assert found is not None and (found.bucket, found.key, found.etag) == ("bkt", "a b/c.txt", "e")
    assert json.loads(text)["Records"][0]["eventTime"] == "2026-01-02T00:00:00.000Z"


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        (b'{"a": 1}', b'{"a": 1}'),
        (base64.b64encode(b"\x00\x01binary"), b"\x00\x01binary"),
        (b"plain text, not base64!", b"plain text, not base64!"),
    ],
)
def test_bodies_follow_oscars_rule(tmp_path: Path, body: bytes, decoded: bytes) -> None:
    raw, staged = tmp_path / "raw", tmp_path / "staged"
    raw.write_bytes(body)
    decode_body_file(raw, staged)
    assert staged.read_bytes() == decoded


def test_output_becomes_lines_across_chunks_with_secrets_masked() -> None:
    batches: list[list[LogLine]] = []
    register_secret("hunter2-secret")
    stream = LogStream(lambda lines: batches.append(list(lines)), interval=3600)

    stream.feed(b"first li")
    stream.feed(b"ne\r\nsecond hunter2-secret\nunfinished")
    stream.feed(b"x" * (MAX_LINE + 10))
    stream.note("done")
    stream.flush(final=True)

    lines = [text for batch in batches for _, text in batch]
    assert lines[:2] == ["first line", "second ********"]
    assert lines[2] == "unfinished" + "x" * (MAX_LINE - len("unfinished"))
    assert lines[3] == "[oscar] done"
    assert lines[4] == "x" * (len("unfinished") + 10)


@pytest.mark.parametrize(
    ("key", "name"),
    [("in/photo.jpg", "photo.jpg"), ("in/", "input"), ("..", "input"), ("a/b/c", "c")],
)
def test_the_staged_input_is_named_after_the_key(key: str, name: str) -> None:
    assert input_file_name(key) == name


def test_a_very_long_key_keeps_its_extension() -> None:
    name = input_file_name("in/" + "x" * 400 + ".tar.gz")
    assert name.endswith(".gz") and len(name.encode()) <= 200


def test_the_engine_package_exports_its_public_surface_only() -> None:
    import oscarpy.engine

    assert sorted(oscarpy.engine.__all__) == [
        "AttemptOutcome",
        "AttemptView",
        "Capacity",
        "ClusterRuntime",
        "ContainerError",
        "Engine",
        "EngineError",
        "ImageUnavailable",
        "InfrastructureError",
        "InvalidJobOperation",
        "JobNotFound",
        "JobSource",
        "JobStatus",
        "JobView",
        "NodeStatus",
        "OutcomeKind",
        "RuntimeUnavailable",
        "StagingError",
    ]
    assert all(hasattr(oscarpy.engine, name) for name in oscarpy.engine.__all__)


def test_the_retry_policy_decides_every_next_attempt() -> None:
    from oscarpy.engine.outcomes import AttemptOutcome, OutcomeKind
    from oscarpy.engine.records import JobSource
    from oscarpy.engine.retries import Failures

    policy = RetryPolicy(limit=1, base_seconds=4, jitter=0)
    script = AttemptOutcome(OutcomeKind.SCRIPT_FAILED, "script exited with 1", "exit", 1)
    flood = AttemptOutcome(OutcomeKind.SCRIPT_FAILED, "printed too much", "log_flood")
    broken = AttemptOutcome(OutcomeKind.INFRASTRUCTURE_FAILED, "daemon error", "runtime")
    storage = JobSource.STORAGE
    assert policy.next_attempt(storage, AttemptOutcome.success(), Failures()) is None
    assert policy.next_attempt(storage, script, Failures(script=1), script_retries=1) == 0
    assert policy.next_attempt(storage, script, Failures(script=2), script_retries=1) is None
    assert policy.next_attempt(storage, flood, Failures(script=1), script_retries=5) is None
    assert policy.next_attempt(storage, broken, Failures(infrastructure=1)) == 4
    assert policy.next_attempt(storage, broken, Failures(infrastructure=2)) is None
    assert policy.next_attempt(JobSource.RUN, broken, Failures(infrastructure=1)) is None
