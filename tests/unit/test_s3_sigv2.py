"""SigV2 verification against the worked examples of the S3 developer guide ("Signing and
Authenticating REST Requests"), and its expiry and clock rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from oscarpy.s3.errors import S3Error
from oscarpy.s3.sigv4 import Credentials, Verifier

ACCESS = "AKIAIOSFODNN7EXAMPLE"
VERIFIER = Verifier(Credentials(ACCESS, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
HOST = {"host": ["johnsmith.s3.amazonaws.com"]}
PRESIGNED = f"AWSAccessKeyId={ACCESS}&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620"


def _verify(
    method: str, path: str, query: str, headers: dict[str, list[str]], now: datetime
) -> Any:
    return VERIFIER.verify(method, path, query, headers, now=now, bucket_from_host="johnsmith")


def _header(signature: str, date: str, **extra: list[str]) -> dict[str, list[str]]:
    return {**HOST, "date": [date], "authorization": [f"AWS {ACCESS}:{signature}"], **extra}


def test_the_documented_header_signatures_verify() -> None:
    got = VERIFIER.verify(
        "GET",
        "/photos/puppy.jpg",
        "",
        _header("bWq2s1WEIj+Ydj0vQ697zp+IXMU=", "Tue, 27 Mar 2007 19:36:42 +0000"),
        now=datetime(2007, 3, 27, 19, 40, tzinfo=UTC),
        bucket_from_host="johnsmith",
    )
    assert (got.access_key, got.presigned) == (ACCESS, False)
    put = _header(
        "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
        "Tue, 27 Mar 2007 21:15:45 +0000",
        **{"content-type": ["image/jpeg"], "content-length": ["94328"]},
    )
    _verify("PUT", "/photos/puppy.jpg", "", put, datetime(2007, 3, 27, 21, 20, tzinfo=UTC))


def test_a_changed_request_or_an_old_date_is_refused() -> None:
    headers = _header("bWq2s1WEIj+Ydj0vQ697zp+IXMU=", "Tue, 27 Mar 2007 19:36:42 +0000")
    with pytest.raises(S3Error) as raised:
        _verify("GET", "/photos/kitten.jpg", "", headers, datetime(2007, 3, 27, 19, 40, tzinfo=UTC))
    assert raised.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error) as raised:
        _verify("GET", "/photos/puppy.jpg", "", headers, datetime(2007, 3, 27, 20, 0, tzinfo=UTC))
    assert raised.value.code == "RequestTimeTooSkewed"


def test_the_documented_presigned_url_verifies_until_it_expires() -> None:
    got = _verify(
        "GET", "/photos/puppy.jpg", PRESIGNED, HOST, datetime(2007, 3, 29, 3, 40, tzinfo=UTC)
    )
    assert got.presigned
    with pytest.raises(S3Error) as raised:  # Expires is 2007-03-29T03:40:20Z
        _verify(
            "GET",
            "/photos/puppy.jpg",
            PRESIGNED,
            HOST,
            datetime(2007, 3, 29, 3, 40, 21, tzinfo=UTC),
        )
    assert (raised.value.code, raised.value.status) == ("AccessDenied", 403)


def test_a_presigned_url_valid_for_more_than_a_week_is_refused() -> None:
    with pytest.raises(S3Error) as raised:
        _verify("GET", "/photos/puppy.jpg", PRESIGNED, HOST, datetime(2007, 3, 20, tzinfo=UTC))
    assert (raised.value.code, raised.value.status) == ("AccessDenied", 403)
