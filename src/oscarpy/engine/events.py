"""The event JSON a script receives, and reading the MinIO/S3 events that `/job` accepts.

A storage job's event has the shape MinIO sends for `s3:ObjectCreated:Put`, which is what
OSCAR's supervisor and existing OSCAR scripts read (`Records[0].s3.bucket.name`, URL-encoded
`Records[0].s3.object.key`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus


@dataclass(frozen=True)
class ObjectReference:
    """The object a MinIO/S3 event names."""

    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None
    """MinIO's and S3's id of the event, the same in every delivery of it."""
    event_time: str | None = None


def upload_identity(etag: str | None, committed: datetime | str | None) -> str | None:
    """Which upload of an object a job is for: its ETag and when that upload was committed.

    Uploading the same bytes again is a new upload (a new commit time), so it runs the job again,
    while the same upload seen twice (its event read again after a crash, a redelivered webhook,
    the reconcile pass) has one identity, and the ledger keeps one job for it. `None` (no ETag)
    is never deduplicated.
    """
    if etag is None:
        return None
    if committed is None:
        return etag
    if isinstance(committed, datetime):
        if committed.tzinfo is None:  # SQLite hands back naive UTC
            committed = committed.replace(tzinfo=UTC)
        committed = committed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{etag}@{committed}"


def storage_event(
    bucket: str, key: str, size: int, etag: str, occurred_at: datetime, region: str = ""
) -> str:
    when = occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": region,
        "eventTime": when,
        "eventName": "s3:ObjectCreated:Put",
        "userIdentity": {"principalId": "oscar"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "oscar"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {"key": quote(key, safe="/"), "size": size, "eTag": etag},
        },
    }
    return json.dumps(
        {"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/{key}", "Records": [record]}
    )


def event_time(occurred_at: datetime) -> str:
    return occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_object_event(body: bytes) -> ObjectReference | None:
    """The object named by a MinIO/S3 event body, or `None` if the body is not such an event."""
    try:
        data: Any = json.loads(body)
        record = data["Records"][0]
        s3 = record["s3"]
        bucket = s3["bucket"]["name"]
        key = s3["object"]["key"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        return None
    etag = s3["object"].get("eTag") or s3["object"].get("etag")
    size = s3["object"].get("size")
    sequencer = s3["object"].get("sequencer")
    event_time = record.get("eventTime") if isinstance(record, dict) else None
    return ObjectReference(
        bucket=bucket,
        key=unquote_plus(key),
        etag=str(etag).strip('"') if etag else None,
        size=int(size) if isinstance(size, int) else None,
        sequencer=str(sequencer) if sequencer else None,
        event_time=str(event_time) if event_time else None,
    )
