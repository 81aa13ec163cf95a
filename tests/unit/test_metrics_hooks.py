"""The hooks' own logic: which S3 operation a request is (from a fixed set, whatever the
client sends), and the S3 tables written out in the exposition format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oscarpy.auth.credentials import AdminCredentials
from oscarpy.config import Settings
from oscarpy.db import Database
from oscarpy.observability.metrics import PlatformMetrics
from oscarpy.s3.app import ROUTES, S3App
from oscarpy.s3.metrics import UNSUPPORTED, operation_name
from oscarpy.storage.store import ObjectStore


@pytest.fixture
def app(tmp_path: Path) -> Iterator[S3App]:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    settings = Settings(data_dir=tmp_path, public_s3_endpoint="http://s3.example.org")
    yield S3App(ObjectStore(database, tmp_path), AdminCredentials("a", "b", False), settings)
    database.close()


def scope(
    method: str, path: str, query: str = "", host: str = "127.0.0.1:9000", **headers: str
) -> dict[str, Any]:
    raw = [(b"host", host.encode())] + [
        (name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()
    ]
    return {
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": raw,
    }


@pytest.mark.parametrize(
    ("request_scope", "expected"),
    [
        (scope("GET", "/"), "ListBuckets"),
        (scope("PUT", "/b"), "CreateBucket"),
        (scope("GET", "/b"), "ListObjects"),
        (scope("GET", "/b", "list-type=2&prefix=x"), "ListObjectsV2"),
        (scope("PUT", "/b/some/key", "x-id=PutObject"), "PutObject"),
        (scope("PUT", "/b/k", x_amz_copy_source="/b/other"), "CopyObject"),
        (scope("GET", "/b/k"), "GetObject"),
        (scope("HEAD", "/b/k"), "HeadObject"),
        (scope("DELETE", "/b/k"), "DeleteObject"),
        (scope("POST", "/b", "delete"), "DeleteObjects"),
        (scope("POST", "/b/k", "uploads"), "CreateMultipartUpload"),
        (scope("PUT", "/b/k", "partNumber=1&uploadId=u"), "UploadPart"),
        (
            scope("PUT", "/b/k", "partNumber=1&uploadId=u", x_amz_copy_source="/b/o"),
            "UploadPartCopy",
        ),
        (scope("POST", "/b/k", "uploadId=u"), "CompleteMultipartUpload"),
        (scope("GET", "/b", "location"), "GetBucketLocation"),
        (scope("GET", "/k", host="b.s3.example.org"), "GetObject"),
        (scope("PUT", "/b", "object-lock"), "PutObjectLockConfiguration"),
        (scope("GET", "/b/k", "retention"), "GetObjectRetention"),
        (scope("PUT", "/b/k", "legal-hold"), "PutObjectLegalHold"),
        (scope("PUT", "/b", "policy"), "PutBucketPolicy"),
        (scope("GET", "/b", "publicAccessBlock"), "GetPublicAccessBlock"),
        (scope("GET", "/b", "tagging"), UNSUPPORTED),
        (scope("PATCH", "/b/k"), UNSUPPORTED),
    ],
)
def test_operation_names(app: S3App, request_scope: dict[str, Any], expected: str) -> None:
    assert operation_name(app, request_scope) == expected


def test_whatever_the_client_sends_the_names_are_few(app: S3App) -> None:
    names = {
        operation_name(app, scope(method, f"/bucket-{n}/key-{n}", f"q{n}=1&{sub}", f"h{n}.example"))
        for n in range(200)
        for method in ("GET", "PUT", "POST", "DELETE", "HEAD", f"M{n}")
        for sub in ("", "uploads", "acl", f"odd{n}")
    }
    assert len(names) <= len(ROUTES) + 4


def test_s3_tables_in_the_exposition() -> None:
    metrics = PlatformMetrics()
    for seconds in (0.0005, 0.003, 0.003, 120):
        metrics.s3_answered("PutObject", 200, seconds, 1024, 0)
    metrics.s3_answered("PutObject", 500, 0.02, 10, 0)
    metrics.s3_answered("GetObject", 200, 0.002, 0, 4096)
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    requests = {
        (s.labels["operation"], s.labels["code"]): s.value
        for s in families["oscar_s3_requests"].samples
    }
    assert requests == {("PutObject", "200"): 4, ("PutObject", "500"): 1, ("GetObject", "200"): 1}
    put = {
        (s.name, s.labels.get("le")): s.value
        for s in families["oscar_s3_request_duration_seconds"].samples
        if s.labels["operation"] == "PutObject"
    }
    assert put[("oscar_s3_request_duration_seconds_bucket", "0.001")] == 1
    assert put[("oscar_s3_request_duration_seconds_bucket", "0.005")] == 3
    assert put[("oscar_s3_request_duration_seconds_bucket", "0.025")] == 4
    assert put[("oscar_s3_request_duration_seconds_bucket", "+Inf")] == 5
    assert put[("oscar_s3_request_duration_seconds_count", None)] == 5
    assert put[("oscar_s3_request_duration_seconds_sum", None)] == pytest.approx(120.0265)
    received = families["oscar_s3_received_bytes"].samples
    assert [(s.labels["operation"], s.value) for s in received] == [("PutObject", 4 * 1024 + 10)]
    sent = families["oscar_s3_sent_bytes"].samples
    assert [(s.labels["operation"], s.value) for s in sent] == [("GetObject", 4096)]
