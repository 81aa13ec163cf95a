"""Additional checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256): verified on the way in,
kept, and handed back where S3 hands them back, with boto3 at its default settings (which sends
CRC32 on every upload) and the AWS CLI, against a real `oscar serve`.

Expected values are computed independently of the server's code: zlib and hashlib, and for
CRC32C and CRC64NVME the catalogue's check values of b"123456789"."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

import anycrc
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.test_s3_awscli import aws
from tests.integration.test_s3_support import client, error_code, s3_server  # noqa: F401
from tests.support.server import RunningServer

MiB = 1024 * 1024
CHECK_INPUT = b"123456789"
#: base64 of the big-endian check value of each algorithm over CHECK_INPUT.
CHECK_VALUES = {
    "CRC32": base64.b64encode(zlib.crc32(CHECK_INPUT).to_bytes(4, "big")).decode(),
    "CRC32C": base64.b64encode(bytes.fromhex("e3069283")).decode(),
    "CRC64NVME": base64.b64encode(bytes.fromhex("ae8b14860a799888")).decode(),
    "SHA1": base64.b64encode(hashlib.sha1(CHECK_INPUT).digest()).decode(),
    "SHA256": base64.b64encode(hashlib.sha256(CHECK_INPUT).digest()).decode(),
}


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.fixture(scope="module")
def s3(s3_server: RunningServer) -> Any:  # noqa: F811
    made = client(s3_server)
    made.create_bucket(Bucket="sums")
    return made


@pytest.mark.parametrize("algorithm", sorted(CHECK_VALUES))
def test_each_checksum_is_verified_kept_and_returned(s3: Any, algorithm: str) -> None:
    key = f"check-{algorithm}"
    field = f"Checksum{algorithm}"
    put = s3.put_object(
        Bucket="sums", Key=key, Body=CHECK_INPUT, **{field: CHECK_VALUES[algorithm]}
    )
    assert put[field] == CHECK_VALUES[algorithm]

    head = s3.head_object(Bucket="sums", Key=key, ChecksumMode="ENABLED")
    assert (head[field], head["ChecksumType"]) == (CHECK_VALUES[algorithm], "FULL_OBJECT")
    got = s3.get_object(Bucket="sums", Key=key, ChecksumMode="ENABLED")
    assert (got[field], got["Body"].read()) == (CHECK_VALUES[algorithm], CHECK_INPUT)
    assert field not in s3.head_object(Bucket="sums", Key=key)  # only when asked for

    listed = s3.list_objects_v2(Bucket="sums", Prefix=key)["Contents"][0]
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == ([algorithm], "FULL_OBJECT")


@pytest.mark.parametrize("algorithm", sorted(CHECK_VALUES))
def test_a_wrong_checksum_is_refused_and_nothing_is_stored(s3: Any, algorithm: str) -> None:
    field = f"Checksum{algorithm}"
    key = f"wrong-{algorithm}"
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="sums", Key=key, Body=b"12345678X", **{field: CHECK_VALUES[algorithm]})
    assert error_code(raised) == ("BadDigest", 400)
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="sums", Key=key, Body=CHECK_INPUT, **{field: "bm90IGEgZGlnZXN0"})
    assert error_code(raised) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket="sums", Key=key)
    assert error_code(raised) == ("404", 404)


def test_boto3_defaults_send_crc32_and_validate_it_on_download(s3: Any, tmp_path: Path) -> None:
    body = os.urandom(100_000)
    s3.put_object(Bucket="sums", Key="default", Body=body)  # boto3 adds CRC32 by itself
    head = s3.head_object(Bucket="sums", Key="default", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32(body)

    # upload_file at its defaults goes multipart above 8 MiB; download_file checks what it gets.
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * MiB))
    s3.upload_file(str(big), "sums", "big")
    s3.download_file("sums", "big", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    head = s3.head_object(Bucket="sums", Key="big", ChecksumMode="ENABLED")
    if head.get("ChecksumType") == "FULL_OBJECT":
        assert head["ChecksumCRC32"] == crc32(big.read_bytes())


def test_a_range_has_no_checksum_but_the_whole_object_does(s3: Any) -> None:
    s3.put_object(Bucket="sums", Key="ranged", Body=CHECK_INPUT, ChecksumAlgorithm="SHA256")
    part = s3.get_object(Bucket="sums", Key="ranged", Range="bytes=0-3", ChecksumMode="ENABLED")
    assert part["Body"].read() == b"1234"
    assert "ChecksumSHA256" not in part


def _upload_two_parts(s3: Any, key: str, first: bytes, second: bytes, **create: Any) -> Any:
    upload = s3.create_multipart_upload(Bucket="sums", Key=key, **create)["UploadId"]
    parts = []
    for number, body in ((1, first), (2, second)):
        answer = s3.upload_part(
            Bucket="sums", Key=key, UploadId=upload, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": crc32(body)})
        assert answer["ChecksumCRC32"] == crc32(body)
    return upload, parts


def test_multipart_composite_checksum(s3: Any) -> None:
    first, second = os.urandom(5 * MiB), os.urandom(1000)
    upload, parts = _upload_two_parts(s3, "composite", first, second, ChecksumAlgorithm="CRC32")
    listed = s3.list_parts(Bucket="sums", Key="composite", UploadId=upload)
    assert [part["ChecksumCRC32"] for part in listed["Parts"]] == [crc32(first), crc32(second)]

    wrong = [parts[0], {**parts[1], "ChecksumCRC32": crc32(b"other")}]
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket="sums", Key="composite", UploadId=upload, MultipartUpload={"Parts": wrong}
        )
    assert error_code(raised) == ("InvalidPart", 400)

    done = s3.complete_multipart_upload(
        Bucket="sums", Key="composite", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    joined = zlib.crc32(b"".join(base64.b64decode(part["ChecksumCRC32"]) for part in parts))
    composite = base64.b64encode(joined.to_bytes(4, "big")).decode() + "-2"
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (composite, "COMPOSITE")
    head = s3.head_object(Bucket="sums", Key="composite", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (composite, "COMPOSITE")
    one = s3.get_object(Bucket="sums", Key="composite", PartNumber=2, ChecksumMode="ENABLED")
    assert (one["Body"].read(), one["ChecksumCRC32"]) == (second, crc32(second))

    attributes = s3.get_object_attributes(
        Bucket="sums",
        Key="composite",
        ObjectAttributes=["ETag", "Checksum", "ObjectParts", "ObjectSize", "StorageClass"],
    )
    assert attributes["Checksum"] == {"ChecksumCRC32": composite, "ChecksumType": "COMPOSITE"}
    assert attributes["ObjectSize"] == len(first) + len(second)
    assert attributes["ETag"] == head["ETag"].strip('"')
    object_parts = attributes["ObjectParts"]
    assert object_parts["TotalPartsCount"] == 2
    assert [
        (part["PartNumber"], part["Size"], part["ChecksumCRC32"]) for part in object_parts["Parts"]
    ] == [
        (1, len(first), crc32(first)),
        (2, len(second), crc32(second)),
    ]


def test_multipart_full_object_checksum(s3: Any) -> None:
    first, second = os.urandom(5 * MiB), os.urandom(1000)
    upload, parts = _upload_two_parts(
        s3, "full", first, second, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )
    whole = crc32(first + second)
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket="sums",
            Key="full",
            UploadId=upload,
            MultipartUpload={"Parts": parts},
            ChecksumCRC32=crc32(b"something else"),
            ChecksumType="FULL_OBJECT",
        )
    assert error_code(raised) == ("BadDigest", 400)
    done = s3.complete_multipart_upload(
        Bucket="sums",
        Key="full",
        UploadId=upload,
        MultipartUpload={"Parts": parts},
        ChecksumCRC32=whole,
        ChecksumType="FULL_OBJECT",
    )
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (whole, "FULL_OBJECT")
    # A full-object checksum is the one of the whole body: boto3 checks the download with it.
    got = s3.get_object(Bucket="sums", Key="full", ChecksumMode="ENABLED")
    assert (got["ChecksumCRC32"], got["Body"].read()) == (whole, first + second)


def test_multipart_checksum_rules(s3: Any) -> None:
    with pytest.raises(ClientError) as raised:
        s3.create_multipart_upload(
            Bucket="sums", Key="r", ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT"
        )
    assert error_code(raised) == ("InvalidRequest", 400)
    upload = s3.create_multipart_upload(Bucket="sums", Key="r", ChecksumAlgorithm="SHA1")
    assert (upload["ChecksumAlgorithm"], upload["ChecksumType"]) == ("SHA1", "COMPOSITE")
    with pytest.raises(ClientError) as raised:  # boto3 sends CRC32 here by default
        s3.upload_part(Bucket="sums", Key="r", UploadId=upload["UploadId"], PartNumber=1, Body=b"x")
    assert error_code(raised) == ("InvalidRequest", 400)


def test_copy_keeps_the_checksum_or_computes_a_new_one(s3: Any) -> None:
    s3.put_object(Bucket="sums", Key="source", Body=CHECK_INPUT, ChecksumAlgorithm="SHA1")
    kept = s3.copy_object(Bucket="sums", Key="kept", CopySource={"Bucket": "sums", "Key": "source"})
    assert kept["CopyObjectResult"]["ChecksumSHA1"] == CHECK_VALUES["SHA1"]
    changed = s3.copy_object(
        Bucket="sums",
        Key="changed",
        CopySource={"Bucket": "sums", "Key": "source"},
        ChecksumAlgorithm="CRC64NVME",
    )
    assert changed["CopyObjectResult"]["ChecksumCRC64NVME"] == CHECK_VALUES["CRC64NVME"]


def test_the_aws_cli_reads_checksums(
    s3: Any,
    s3_server: RunningServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    body = tmp_path / "check.txt"
    body.write_bytes(CHECK_INPUT)
    put = ["s3api", "put-object", "--bucket", "sums", "--key", "cli", "--body", str(body)]
    aws(s3_server, tmp_path, *put, "--checksum-algorithm", "SHA256")
    head = [
        "s3api",
        "head-object",
        "--bucket",
        "sums",
        "--key",
        "cli",
        "--checksum-mode",
        "ENABLED",
    ]
    assert json.loads(aws(s3_server, tmp_path, *head))["ChecksumSHA256"] == CHECK_VALUES["SHA256"]
    attributes = json.loads(
        aws(
            s3_server,
            tmp_path,
            "s3api",
            "get-object-attributes",
            "--bucket",
            "sums",
            "--key",
            "cli",
            "--object-attributes",
            "Checksum",
            "ObjectSize",
        )
    )
    assert attributes["Checksum"]["ChecksumSHA256"] == CHECK_VALUES["SHA256"]
    assert attributes["ObjectSize"] == len(CHECK_INPUT)


def test_a_copied_part_gets_the_uploads_checksum(s3: Any) -> None:
    first, second = os.urandom(5 * MiB), b"tail"
    s3.put_object(Bucket="sums", Key="part-source", Body=first)
    upload = s3.create_multipart_upload(Bucket="sums", Key="copied", ChecksumAlgorithm="CRC32")
    copied = s3.upload_part_copy(
        Bucket="sums",
        Key="copied",
        UploadId=upload["UploadId"],
        PartNumber=1,
        CopySource={"Bucket": "sums", "Key": "part-source"},
    )["CopyPartResult"]
    assert copied["ChecksumCRC32"] == crc32(first)
    tail = s3.upload_part(
        Bucket="sums", Key="copied", UploadId=upload["UploadId"], PartNumber=2, Body=second
    )
    parts = [
        {"PartNumber": 1, "ETag": copied["ETag"], "ChecksumCRC32": crc32(first)},
        {"PartNumber": 2, "ETag": tail["ETag"], "ChecksumCRC32": crc32(second)},
    ]
    done = s3.complete_multipart_upload(
        Bucket="sums", Key="copied", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert done["ChecksumType"] == "COMPOSITE"
    assert done["ChecksumCRC32"].endswith("-2")


def crc64nvme(data: bytes) -> str:
    """CRC64NVME by anycrc's catalogue model (checked against the check value below)."""
    value = anycrc.Model("CRC64-NVME").calc(data)
    return base64.b64encode(int(value).to_bytes(8, "big")).decode()


def test_an_upload_without_a_checksum_gets_s3s_default_crc64nvme(
    s3: Any,
    s3_server: RunningServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    # A presigned PUT (what browsers and curl use) carries no checksum.
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "sums", "Key": "plain"})
    assert httpx.put(url, content=CHECK_INPUT).status_code == 200
    expected = CHECK_VALUES["CRC64NVME"]
    assert crc64nvme(CHECK_INPUT) == expected
    head = s3.head_object(Bucket="sums", Key="plain", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (expected, "FULL_OBJECT")
    listed = s3.list_objects_v2(Bucket="sums", Prefix="plain")["Contents"][0]
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == (["CRC64NVME"], "FULL_OBJECT")
    attributes = s3.get_object_attributes(Bucket="sums", Key="plain", ObjectAttributes=["Checksum"])
    assert attributes["Checksum"]["ChecksumCRC64NVME"] == expected
    got = s3.get_object(Bucket="sums", Key="plain", ChecksumMode="ENABLED")
    assert (got["ChecksumCRC64NVME"], got["Body"].read()) == (expected, CHECK_INPUT)
    cli_head = ["s3api", "head-object", "--bucket", "sums", "--key", "plain"]
    cli = json.loads(aws(s3_server, tmp_path, *cli_head, "--checksum-mode", "ENABLED"))
    assert cli["ChecksumCRC64NVME"] == expected

    # A copy keeps it; a client's own checksum still wins over the default.
    s3.copy_object(Bucket="sums", Key="plain-copy", CopySource={"Bucket": "sums", "Key": "plain"})
    copied = s3.head_object(Bucket="sums", Key="plain-copy", ChecksumMode="ENABLED")
    assert copied["ChecksumCRC64NVME"] == expected
    s3.put_object(Bucket="sums", Key="with-crc32", Body=CHECK_INPUT)
    own = s3.head_object(Bucket="sums", Key="with-crc32", ChecksumMode="ENABLED")
    assert own["ChecksumCRC32"] == CHECK_VALUES["CRC32"] and "ChecksumCRC64NVME" not in own


def test_a_multipart_upload_without_checksums_gets_a_full_object_crc64nvme(
    s3_server: RunningServer,  # noqa: F811
) -> None:
    # A client that sends checksums only where required (older SDKs, rclone, most tools).
    plain = client(
        s3_server,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    first, second = os.urandom(5 * MiB), os.urandom(1000)
    upload = plain.create_multipart_upload(Bucket="sums", Key="plain-parts")["UploadId"]
    parts = []
    for number, body in enumerate((first, second), start=1):
        sent = plain.upload_part(
            Bucket="sums", Key="plain-parts", UploadId=upload, PartNumber=number, Body=body
        )
        assert sent["ChecksumCRC64NVME"] == crc64nvme(body)
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    done = plain.complete_multipart_upload(
        Bucket="sums", Key="plain-parts", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    whole = crc64nvme(first + second)
    assert (done["ChecksumCRC64NVME"], done["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = plain.head_object(Bucket="sums", Key="plain-parts", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (whole, "FULL_OBJECT")
