"""Signature Version 2 with boto3's defaults (its presigned URLs) and its `s3` signer (the
Authorization header), and the AWS CLI's presigned URLs, against a real `oscar serve`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.test_s3_awscli import aws
from tests.integration.test_s3_support import client, error_code, s3_server  # noqa: F401
from tests.support.server import RunningServer

BUCKET = "sigv2-presigned"


@pytest.fixture(scope="module")
def s3(s3_server: RunningServer) -> Any:  # noqa: F811
    created = client(s3_server)
    created.create_bucket(Bucket=BUCKET)
    created.put_object(Bucket=BUCKET, Key="dir/a b+c.txt", Body=b"presigned by default")
    return created


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


def test_boto3s_default_presigned_get_url_is_sigv2_and_works(s3: Any) -> None:
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "dir/a b+c.txt"}, ExpiresIn=300
    )
    assert "AWSAccessKeyId=" in url and "Signature=" in url  # what boto3 makes by default

    fetched = httpx.get(url)

    assert (fetched.status_code, fetched.content) == (200, b"presigned by default")
    overridden = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": BUCKET, "Key": "dir/a b+c.txt", "ResponseContentType": "text/x-v2"},
    )
    assert httpx.get(overridden).headers["content-type"] == "text/x-v2"
    tampered = httpx.get(url.replace("a%20b", "x%20b"))
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text
    forged = httpx.get(_with_query(url, Expires=str(int(time.time()) + 3000)))
    assert forged.status_code == 403 and "SignatureDoesNotMatch" in forged.text


def test_a_sigv2_presigned_put_with_a_content_type_stores_the_object(s3: Any) -> None:
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": BUCKET, "Key": "uploaded.txt", "ContentType": "text/plain"},
        ExpiresIn=60,
    )
    answer = httpx.put(url, content=b"put by url", headers={"Content-Type": "text/plain"})

    assert answer.status_code == 200, answer.text
    stored = s3.get_object(Bucket=BUCKET, Key="uploaded.txt")
    assert (stored["Body"].read(), stored["ContentType"]) == (b"put by url", "text/plain")


def test_sigv2_presigned_urls_expire_and_last_at_most_a_week(s3: Any) -> None:
    expired = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "dir/a b+c.txt"}, ExpiresIn=-1
    )
    answer = httpx.get(expired)
    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text and "expired" in answer.text
    too_long = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "dir/a b+c.txt"}, ExpiresIn=8 * 86400
    )
    answer = httpx.get(too_long)
    assert answer.status_code == 403 and "<Code>AccessDenied</Code>" in answer.text


def test_sigv4_presigned_urls_of_no_time_or_over_a_week_answer_403(
    s3_server: RunningServer,  # noqa: F811
) -> None:
    v4 = client(s3_server, signature_version="s3v4")
    url = v4.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "dir/a b+c.txt"}, ExpiresIn=60
    )
    for expires in ("0", "604801"):
        # The signature no longer matches either; the expiry is checked first, as S3 does.
        answer = httpx.get(_with_query(url, **{"X-Amz-Expires": expires}))
        assert answer.status_code == 403 and "<Code>AccessDenied</Code>" in answer.text


def test_the_sigv2_authorization_header_signs_every_operation(
    s3_server: RunningServer,  # noqa: F811
) -> None:
    v2 = client(s3_server, signature_version="s3")
    sent: list[bytes] = []
    v2.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(request.headers["Authorization"])
    )
    v2.create_bucket(Bucket="sigv2-header")
    v2.put_object(
        Bucket="sigv2-header",
        Key="folder/x y.txt",
        Body=b"header signed",
        ContentType="text/plain",
        Metadata={"origin": "v2"},
    )
    got = v2.get_object(Bucket="sigv2-header", Key="folder/x y.txt")
    assert (got["Body"].read(), got["Metadata"]) == (b"header signed", {"origin": "v2"})
    listed = v2.list_objects_v2(Bucket="sigv2-header", Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["folder/"]
    v2.copy_object(
        Bucket="sigv2-header",
        Key="copy.txt",
        CopySource={"Bucket": "sigv2-header", "Key": "folder/x y.txt"},
    )
    assert v2.get_bucket_acl(Bucket="sigv2-header")["Grants"]
    v2.delete_objects(
        Bucket="sigv2-header",
        Delete={"Objects": [{"Key": "copy.txt"}, {"Key": "folder/x y.txt"}]},
    )
    v2.delete_bucket(Bucket="sigv2-header")
    assert sent and all(value.startswith(b"AWS ") for value in sent)


def test_a_wrong_sigv2_secret_or_key_is_refused(s3_server: RunningServer) -> None:  # noqa: F811
    wrong = client(s3_server, secret="not-the-secret", signature_version="s3")
    with pytest.raises(ClientError) as raised:
        wrong.list_buckets()
    assert error_code(raised) == ("SignatureDoesNotMatch", 403)
    stranger = client(s3_server, signature_version="s3")
    stranger._request_signer._credentials.access_key = "nobody"
    with pytest.raises(ClientError) as raised:
        stranger.list_buckets()
    assert error_code(raised) == ("InvalidAccessKeyId", 403)


def test_the_aws_clis_presigned_url_works(
    s3: Any,
    s3_server: RunningServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = aws(s3_server, tmp_path, "s3", "presign", f"s3://{BUCKET}/dir/a b+c.txt").strip()

    fetched = httpx.get(url)

    assert (fetched.status_code, fetched.content) == (200, b"presigned by default")
