"""Browser-style uploads with a POST policy (PostObject): forms made by boto3's
`generate_presigned_post` at its defaults and with SigV4, posted as multipart/form-data to a
real `oscar serve`, and the policy's conditions enforced as S3 enforces them."""

from __future__ import annotations

import base64
import json
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from tests.integration.test_s3_support import client, s3_server  # noqa: F401
from tests.support.server import RunningServer

BUCKET = "forms"


@pytest.fixture(scope="module")
def s3(s3_server: RunningServer) -> Any:  # noqa: F811
    made = client(s3_server)
    made.create_bucket(Bucket=BUCKET)
    return made


@pytest.fixture(scope="module")
def s3v4(s3_server: RunningServer) -> Any:  # noqa: F811
    return client(s3_server, signature_version="s3v4")


def post(
    form: dict[str, Any], data: bytes, filename: str = "photo.jpg", **extra: str
) -> httpx.Response:
    fields = {**form["fields"], **extra}
    return httpx.post(
        form["url"], data=fields, files={"file": (filename, data, "image/jpeg")}, timeout=30
    )


def s3_error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, ElementTree.fromstring(response.content).findtext("Code") or ""


def test_generate_presigned_post_at_its_defaults(s3: Any) -> None:
    form = s3.generate_presigned_post(BUCKET, "defaults.txt")

    response = post(form, b"posted with the defaults")

    assert response.status_code == 204
    assert response.headers["ETag"].strip('"')
    got = s3.get_object(Bucket=BUCKET, Key="defaults.txt")
    assert got["Body"].read() == b"posted with the defaults"


def test_sigv4_form_with_filename_conditions_and_201(s3: Any, s3v4: Any) -> None:
    form = s3v4.generate_presigned_post(
        BUCKET,
        "uploads/${filename}",
        Fields={"success_action_status": "201", "Content-Type": "image/jpeg"},
        Conditions=[
            ["starts-with", "$key", "uploads/"],
            ["content-length-range", 1, 1000],
            {"success_action_status": "201"},
            ["starts-with", "$Content-Type", "image/"],
        ],
        ExpiresIn=600,
    )
    assert form["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"

    response = post(form, b"\xff\xd8 a tiny jpeg", filename="cat.jpg")

    assert response.status_code == 201
    answer = ElementTree.fromstring(response.content)
    assert answer.tag.endswith("PostResponse")
    assert [answer.findtext(f"{{*}}{name}") for name in ("Bucket", "Key")] == [
        BUCKET,
        "uploads/cat.jpg",
    ]
    got = s3.get_object(Bucket=BUCKET, Key="uploads/cat.jpg")
    assert (got["Body"].read(), got["ContentType"]) == (b"\xff\xd8 a tiny jpeg", "image/jpeg")

    too_big = post(form, b"x" * 1001, filename="big.jpg")
    assert s3_error(too_big) == (400, "EntityTooLarge")
    empty = post(form, b"", filename="empty.jpg")
    assert s3_error(empty) == (400, "EntityTooSmall")
    for missing in ("big.jpg", "empty.jpg"):
        assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"uploads/{missing}")


def test_policy_conditions_and_signature_are_enforced(s3v4: Any) -> None:
    form = s3v4.generate_presigned_post(
        BUCKET, "fixed.txt", Conditions=[["eq", "$x-amz-meta-owner", "alice"]]
    )
    ok = post(form, b"data", **{"x-amz-meta-owner": "alice"})
    assert ok.status_code == 204

    assert s3_error(post(form, b"data", **{"x-amz-meta-owner": "mallory"})) == (
        403,
        "AccessDenied",
    )
    extra = post(form, b"data", **{"x-amz-meta-owner": "alice", "x-amz-meta-more": "1"})
    assert s3_error(extra) == (403, "AccessDenied")
    assert b"Extra input fields" in extra.content
    other_key = {**form, "fields": {**form["fields"], "key": "elsewhere.txt"}}
    assert s3_error(post(other_key, b"data", **{"x-amz-meta-owner": "alice"})) == (
        403,
        "AccessDenied",
    )
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    policy["conditions"].append(["starts-with", "$key", ""])  # widened by the sender
    widened = base64.b64encode(json.dumps(policy).encode()).decode()
    tampered = post(form, b"data", policy=widened, **{"x-amz-meta-owner": "alice"})
    assert s3_error(tampered) == (403, "SignatureDoesNotMatch")

    expired = s3v4.generate_presigned_post(BUCKET, "late.txt", ExpiresIn=-10)
    assert s3_error(post(expired, b"data")) == (403, "AccessDenied")
    unsigned = httpx.post(form["url"], data={"key": "anon.txt"}, files={"file": ("a", b"a")})
    assert s3_error(unsigned) == (403, "AccessDenied")


def test_success_action_redirect(s3: Any, s3v4: Any) -> None:
    target = "http://uploads.example/done?from=form"
    form = s3v4.generate_presigned_post(
        BUCKET,
        "redirected.txt",
        Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}],
    )

    response = post(form, b"then redirected")

    assert response.status_code == 303
    location = httpx.URL(response.headers["Location"])
    assert str(location).startswith(target + "&")
    assert location.params["key"] == "redirected.txt"
    assert location.params["bucket"] == BUCKET
    etag = s3.head_object(Bucket=BUCKET, Key="redirected.txt")["ETag"]
    assert location.params["etag"] == etag
