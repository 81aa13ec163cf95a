"""Browser uploads with a POST policy (S3's PostObject): `POST /{bucket}` with a
multipart/form-data body whose fields carry a signed policy and whose last part is the file.

The request itself is not signed: the form is. Its `policy` (base64 JSON with an `expiration`
and `conditions`) is signed with SigV4 (`x-amz-algorithm`, `x-amz-credential`, `x-amz-date`,
`x-amz-signature`) or SigV2 (`AWSAccessKeyId`, `signature`), and every other field must satisfy
a condition of it, as S3 checks them. This is what `generate_presigned_post` and upload pages
produce.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from anyio import to_thread
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from oscarpy.s3 import sigv2
from oscarpy.s3.call import S3Call
from oscarpy.s3.documents import document, elements
from oscarpy.s3.errors import S3Error, from_store_error
from oscarpy.s3.headers import object_settings
from oscarpy.s3.sigv4 import ALGORITHM, Credentials, sign, signatures_equal, signing_key
from oscarpy.storage.blobs import WrittenBlob
from oscarpy.storage.errors import StorageError
from oscarpy.storage.store import ObjectDetails, validate_key

#: Verifies a form's signature with the secret of an access key (raising S3Error); the S3 app
#: supplies it, so that failed attempts are throttled like failed request signatures.
FormSigner = Callable[[str, Callable[[Credentials], None]], None]
MAX_FIELDS = 100
MAX_FIELD_BYTES = 64 * 1024
#: Fields no condition needs to cover: the signature's own, and those S3 names so.
_EXEMPT = {
    "policy",
    "x-amz-signature",
    "signature",
    "awsaccesskeyid",
    "file",
}


def is_form_upload(method: str, key: str, headers: dict[str, list[str]]) -> bool:
    """A browser POST upload to a bucket: it carries no request signature of its own."""
    content_type = (headers.get("content-type") or [""])[0].lower()
    return method == "POST" and not key and content_type.startswith("multipart/form-data")


@dataclass
class _Form:
    fields: dict[str, str]
    """By lower-case name, first value; the file's part excluded."""
    file: UploadFile


async def _read_form(call: S3Call) -> _Form:
    try:
        parsed = await call.request.form(
            max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES
        )
    except Exception as error:  # python-multipart's and starlette's parse errors
        raise S3Error("MalformedPOSTRequest", f"the form could not be parsed: {error}") from error
    fields: dict[str, str] = {}
    upload: UploadFile | None = None
    for name, value in parsed.multi_items():
        if isinstance(value, UploadFile):
            if name.lower() == "file":
                upload = value
            continue
        fields.setdefault(name.lower(), value)
    if upload is None:
        raise S3Error("InvalidArgument", "POST requires exactly one file upload per request.")
    return _Form(fields, upload)


def _policy_document(encoded: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as error:
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from error
    if not isinstance(policy, dict) or not isinstance(policy.get("conditions"), list):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Policy missing conditions.")
    return policy


def _check_expiration(policy: dict[str, Any], now: datetime) -> None:
    text = policy.get("expiration")
    if not isinstance(text, str):
        raise S3Error("InvalidPolicyDocument", "Invalid Policy: Policy missing expiration.")
    try:
        expiration = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise S3Error(
            "InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value."
        ) from error
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    if expiration <= now:
        raise S3Error("AccessDenied", "Invalid according to Policy: Policy expired.")


def _signature_check(fields: dict[str, str]) -> tuple[str, Callable[[Credentials], None]]:
    """The access key the form names, and the check of its signature with that key's secret."""
    policy = fields["policy"]
    if "x-amz-signature" in fields:
        if fields.get("x-amz-algorithm") != ALGORITHM:
            raise S3Error("InvalidArgument", f"x-amz-algorithm must be {ALGORITHM}")
        parts = fields.get("x-amz-credential", "").split("/")
        if len(parts) != 5 or parts[4] != "aws4_request" or "x-amz-date" not in fields:
            raise S3Error(
                "InvalidArgument",
                "x-amz-credential must be <key>/<date>/<region>/s3/aws4_request, with x-amz-date",
            )
        access_key, date, scope_region, service, _ = parts

        def check_v4(credentials: Credentials) -> None:
            key = signing_key(credentials.secret_key, date, scope_region, service)
            if not signatures_equal(sign(key, policy), fields["x-amz-signature"].lower()):
                raise _mismatch()

        return access_key, check_v4
    if "signature" in fields and "awsaccesskeyid" in fields:

        def check_v2(credentials: Credentials) -> None:
            expected = sigv2.signature(credentials.secret_key, policy.encode())
            if not hmac.compare_digest(expected.encode(), fields["signature"].encode()):
                raise _mismatch()

        return fields["awsaccesskeyid"], check_v2
    raise S3Error(
        "AccessDenied",
        "a POST upload needs a signed policy (x-amz-signature with x-amz-credential, or "
        "signature with AWSAccessKeyId)",
    )


def _mismatch() -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
    )


def _policy_failed(condition: object) -> S3Error:
    return S3Error(
        "AccessDenied",
        f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}",
    )


def _check_conditions(conditions: list[Any], values: dict[str, str], size: int) -> None:
    """Every condition holds of `values` (the fields, with `bucket` and the final `key`), and
    every field but the exempt ones is named by a condition."""
    covered: set[str] = set()
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            ((name, expected),) = condition.items()
            name = name.lower()
            covered.add(name)
            if values.get(name) != str(expected):
                raise _policy_failed(condition)
        elif isinstance(condition, list) and len(condition) == 3:
            operator = str(condition[0]).lower()
            if operator == "content-length-range":
                try:
                    low, high = int(condition[1]), int(condition[2])
                except (TypeError, ValueError) as error:
                    raise S3Error(
                        "InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range."
                    ) from error
                if size < low:
                    raise S3Error(
                        "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed size",
                    )
                if size > high:
                    raise S3Error(
                        "EntityTooLarge",
                        "Your proposed upload exceeds the maximum allowed size",
                    )
                continue
            field, expected = str(condition[1]), str(condition[2])
            if operator not in ("eq", "starts-with") or not field.startswith("$"):
                raise S3Error(
                    "InvalidPolicyDocument", f"Invalid Policy: Invalid condition {condition}."
                )
            name = field[1:].lower()
            covered.add(name)
            value = values.get(name)
            if value is None:
                raise _policy_failed(condition)
            if operator == "eq" and value != expected:
                raise _policy_failed(condition)
            if operator == "starts-with" and not _starts_with(name, value, expected):
                raise _policy_failed(condition)
        else:
            raise S3Error(
                "InvalidPolicyDocument", f"Invalid Policy: Invalid condition {condition}."
            )
    extra = sorted(
        name
        for name in values
        if name not in covered
        and name not in _EXEMPT
        and name != "bucket"
        and not name.startswith("x-ignore-")
    )
    if extra:
        raise S3Error(
            "AccessDenied",
            f"Invalid according to Policy: Extra input fields: {', '.join(extra)}",
        )


def _starts_with(name: str, value: str, prefix: str) -> bool:
    """S3's `starts-with`; for Content-Type, each of a comma-separated list must match."""
    if name == "content-type":
        return all(part.strip().startswith(prefix) for part in value.split(","))
    return value.startswith(prefix)


def _copy_in(call: S3Call, upload: UploadFile) -> WrittenBlob:
    upload.file.seek(0)
    return call.store.write_stream(upload.file)


async def post_object(call: S3Call, signer: FormSigner) -> Response:
    """PostObject: check the form's policy and signature, then store the file as `key`."""
    form = await _read_form(call)
    try:
        return await _post(call, signer, form)
    finally:
        await form.file.close()


async def _post(call: S3Call, signer: FormSigner, form: _Form) -> Response:
    fields = form.fields
    if "key" not in fields:
        raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'key'.")
    if "policy" not in fields:
        raise S3Error("AccessDenied", "anonymous uploads are not allowed; sign a POST policy")
    access_key, check = _signature_check(fields)
    signer(access_key, check)
    policy = _policy_document(fields["policy"])
    _check_expiration(policy, datetime.now(UTC))
    key = fields["key"].replace("${filename}", form.file.filename or "")
    try:
        validate_key(key)
    except StorageError as error:
        raise from_store_error(error) from error
    form.file.file.seek(0, 2)
    size = form.file.file.tell()
    values = {**fields, "bucket": call.bucket, "key": key}
    _check_conditions(policy["conditions"], values, size)
    if not await call.run(call.store.bucket_exists, call.bucket):
        raise S3Error("NoSuchBucket", f"bucket {call.bucket!r} does not exist")
    content_type, metadata, stored = object_settings(
        {name: value for name, value in fields.items() if name != "content-encoding"}
    )
    blob = await to_thread.run_sync(_copy_in, call, form.file)

    def commit() -> ObjectDetails:
        return call.store.commit_object(
            call.bucket,
            key,
            blob,
            content_type=content_type,
            metadata=metadata,
            headers=stored,
        )

    found = await call.run(commit)
    return _answer(call, fields, found)


def _answer(call: S3Call, fields: dict[str, str], found: ObjectDetails) -> Response:
    """S3's answer: a 303 to `success_action_redirect`, else `success_action_status` (201
    with a PostResponse document, 200 or the default 204, both empty)."""
    location = f"{call.request.base_url}{call.bucket}/{found.key}"
    etag = f'"{found.etag}"'
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect and urlsplit(redirect).scheme in ("http", "https"):
        query = urlencode({"bucket": call.bucket, "key": found.key, "etag": etag})
        target = redirect + ("&" if "?" in redirect else "?") + query
        return RedirectResponse(target, status_code=303, headers={"ETag": etag})
    status = fields.get("success_action_status", "204")
    headers = {"ETag": etag, "Location": location}
    if status == "201":
        body = elements(Location=location, Bucket=call.bucket, Key=found.key, ETag=etag)
        return Response(
            document("PostResponse", body),
            status_code=201,
            media_type="application/xml",
            headers=headers,
        )
    return Response(status_code=200 if status == "200" else 204, headers=headers)
