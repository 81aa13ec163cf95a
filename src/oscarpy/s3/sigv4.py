"""AWS Signature Version 4 as S3 checks it: in the Authorization header, in presigned query
strings, and the per-chunk signatures of streaming uploads; and Signature Version 2 (header and
presigned query, see `sigv2`) under the same rules of comparison and expiry.

The server recomputes the signature from what it received and compares in constant time; the
secret never leaves this module's callers. Reference: "Authenticating Requests (AWS Signature
Version 4)" in the Amazon S3 API documentation.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from oscarpy.s3 import sigv2
from oscarpy.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRY = 7 * 24 * 3600
_SPACES = re.compile(r"\s+")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEADER_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)


@dataclass(frozen=True)
class Authorization:
    """A verified request: what streaming payload checks need to go on verifying chunks."""

    access_key: str
    amz_date: str
    scope: str
    signing_key: bytes
    signature: str
    payload_hash: str
    presigned: bool


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


@functools.lru_cache(maxsize=16)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Derived once per day, region and service (cached: four HMACs per request otherwise)."""
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign(key: bytes, string_to_sign: str) -> str:
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def signatures_equal(expected: str, given: str) -> bool:
    """Constant-time comparison of a computed signature with one a client sent.

    `hmac.compare_digest` refuses str with non-ASCII characters (a TypeError, so a 500), and a
    client may send anything: compare the UTF-8 bytes instead.
    """
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    return quote(value, safe="-_.~/" if keep_slash else "-_.~")


def canonical_query(raw_query: str, *, skip: str | None = None) -> str:
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = uri_encode(unquote(name)), uri_encode(unquote(value))
        if name != skip:
            pairs.append((name, value))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_headers(headers: Mapping[str, list[str]], signed: list[str]) -> str:
    lines = []
    for name in signed:
        values = headers.get(name)
        if values is None:
            raise S3Error(
                "SignatureDoesNotMatch", f"the signed header {name!r} is missing from the request"
            )
        lines.append(name + ":" + ",".join(_SPACES.sub(" ", value.strip()) for value in values))
    return "\n".join(lines) + "\n"


def _parse_amz_date(value: str) -> datetime:
    """`YYYYMMDDTHHMMSSZ`, parsed by hand: `strptime` costs more than the rest of the check."""
    if _AMZ_DATE.fullmatch(value) is None:
        raise S3Error("AccessDenied", f"invalid X-Amz-Date {value!r}")
    try:
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError as error:
        raise S3Error("AccessDenied", f"invalid X-Amz-Date {value!r}") from error


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


class Verifier:
    """Checks the signature of one request against the admin's key pair."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def verify(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, list[str]],
        now: datetime | None = None,
        *,
        bucket_from_host: str = "",
    ) -> Authorization:
        """`bucket_from_host` names the bucket of a virtual-host-style request: SigV2 signs
        the path with it."""
        now = now or datetime.now(UTC)
        header = (headers.get("authorization") or [""])[0]
        query_lower = raw_query.lower()
        if header.startswith(ALGORITHM):
            return self._verify_header(method, raw_path, raw_query, headers, header, now)
        if "x-amz-algorithm=" in query_lower or "x-amz-credential=" in query_lower:
            return self._verify_query(method, raw_path, raw_query, headers, now)
        if bucket_from_host:
            raw_path = f"/{bucket_from_host}{raw_path}"
        if header.startswith("AWS "):
            return self._verify_v2_header(method, raw_path, raw_query, headers, header, now)
        if "awsaccesskeyid=" in query_lower:
            return self._verify_v2_query(method, raw_path, raw_query, headers, now)
        raise S3Error("AccessDenied", "anonymous requests are not allowed; sign your requests")

    def check_access_key(self, access_key: str) -> None:
        if not hmac.compare_digest(
            access_key.encode("utf-8", "surrogatepass"), self.credentials.access_key.encode()
        ):
            raise S3Error(
                "InvalidAccessKeyId", "the access key id you provided does not exist in our records"
            )

    def _credential_scope(self, credential: str) -> tuple[str, str, str, str]:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise S3Error(
                "AuthorizationQueryParametersError",
                "the credential must be <key>/<date>/<region>/<service>/aws4_request",
            )
        access_key, date, region, service, _ = parts
        self.check_access_key(access_key)
        return access_key, date, region, service

    def _verify_v2_header(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, list[str]],
        header: str,
        now: datetime,
    ) -> Authorization:
        access_key, colon, signature = header[len("AWS ") :].strip().rpartition(":")
        if not colon or not access_key:
            raise S3Error("AccessDenied", "malformed Authorization header")
        self.check_access_key(access_key)
        amz_date = _first(headers, "x-amz-date")
        moment = _parse_http_date(amz_date or _first(headers, "date"))
        if abs(now - moment) > MAX_SKEW:
            raise S3Error(
                "RequestTimeTooSkewed",
                "the difference between the request time and the server's time is too large",
            )
        # With x-amz-date, the Date line of the string to sign is empty.
        date = "" if amz_date else _first(headers, "date")
        amz_headers = _amz_headers(headers)
        standard = {name: _first(headers, name).strip() for name in ("content-md5", "content-type")}
        return self._check_v2(
            method, raw_path, raw_query, standard, date, amz_headers, signature, access_key, headers
        )

    def _verify_v2_query(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, list[str]],
        now: datetime,
    ) -> Authorization:
        params = _query_parameters(raw_query)
        try:
            access_key = params["AWSAccessKeyId"]
            signature = params["Signature"]
            expires = int(params["Expires"])
        except (KeyError, ValueError) as error:
            raise S3Error(
                "AccessDenied",
                "a presigned URL needs AWSAccessKeyId, Signature and Expires (seconds since "
                "the epoch)",
            ) from error
        self.check_access_key(access_key)
        remaining = expires - now.timestamp()
        if remaining < 0:
            raise S3Error("AccessDenied", "Request has expired", Expires=str(expires))
        if remaining > MAX_PRESIGN_EXPIRY + MAX_SKEW.total_seconds():
            raise S3Error(
                "AccessDenied", "a presigned URL cannot be valid for more than 604800 seconds"
            )
        # A presigner moves the x-amz-* headers it signed (and Content-Type, Content-MD5) into
        # the query string.
        amz_headers = _amz_headers(headers)
        for name, value in params.items():
            lowered = name.lower()
            if lowered.startswith("x-amz-"):
                amz_headers.setdefault(lowered, value.strip())
        standard = {
            name: (_first(headers, name) or params.get(name, "")).strip()
            for name in ("content-md5", "content-type")
        }
        return self._check_v2(
            method,
            raw_path,
            raw_query,
            standard,
            str(expires),
            amz_headers,
            signature,
            access_key,
            headers,
            presigned=True,
        )

    def _check_v2(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        standard: dict[str, str],
        date: str,
        amz_headers: dict[str, str],
        signature: str,
        access_key: str,
        headers: Mapping[str, list[str]],
        *,
        presigned: bool = False,
    ) -> Authorization:
        candidates = _path_candidates(raw_path)
        if raw_path.count("/") == 1 and len(raw_path) > 1:
            candidates.append(raw_path + "/")  # SigV2 signs a bucket as "/bucket/"
        for path in candidates:
            resource = sigv2.canonical_resource(path, raw_query)
            string = sigv2.string_to_sign(method, standard, date, amz_headers, resource)
            if any(
                signatures_equal(sigv2.signature(self.credentials.secret_key, form), signature)
                for form in signed_forms(string)
            ):
                # The payload is not signed; a hex SHA-256 a client declares is still checked.
                declared = _first(headers, "x-amz-content-sha256").lower()
                payload_hash = declared if _HEX_SHA256.fullmatch(declared) else UNSIGNED_PAYLOAD
                return Authorization(access_key, "", "", b"", signature, payload_hash, presigned)
        raise _signature_mismatch()

    def _verify_header(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, list[str]],
        header: str,
        now: datetime,
    ) -> Authorization:
        match = _HEADER_AUTH.match(header)
        if match is None:
            raise S3Error("AccessDenied", "malformed Authorization header")
        access_key, date, region, service = self._credential_scope(match["credential"])
        amz_date = (headers.get("x-amz-date") or headers.get("date") or [""])[0]
        moment = _parse_amz_date(amz_date)
        if abs(now - moment) > MAX_SKEW:
            raise S3Error(
                "RequestTimeTooSkewed",
                "the difference between the request time and the server's time is too large",
            )
        payload_hash = (headers.get("x-amz-content-sha256") or [""])[0]
        if not payload_hash:
            raise S3Error("InvalidRequest", "missing required header x-amz-content-sha256")
        signed = match["headers"].split(";")
        return self._check(
            method,
            raw_path,
            canonical_query(raw_query),
            canonical_headers(headers, signed),
            signed,
            payload_hash,
            amz_date,
            f"{date}/{region}/{service}/aws4_request",
            signing_key(self.credentials.secret_key, date, region, service),
            match["signature"].lower(),
            access_key,
            presigned=False,
        )

    def _verify_query(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        headers: Mapping[str, list[str]],
        now: datetime,
    ) -> Authorization:
        params = _query_parameters(raw_query)
        try:
            algorithm = params["X-Amz-Algorithm"]
            credential = params["X-Amz-Credential"]
            amz_date = params["X-Amz-Date"]
            expires = int(params["X-Amz-Expires"])
            signed = params["X-Amz-SignedHeaders"].split(";")
            signature = params["X-Amz-Signature"].lower()
        except (KeyError, ValueError) as error:
            raise S3Error(
                "AuthorizationQueryParametersError",
                "a presigned URL needs X-Amz-Algorithm, -Credential, -Date, -Expires, "
                "-SignedHeaders and -Signature",
            ) from error
        if algorithm != ALGORITHM:
            raise S3Error("AuthorizationQueryParametersError", f"unsupported {algorithm!r}")
        if not 0 < expires <= MAX_PRESIGN_EXPIRY:
            # 403, as S3 answers (a URL valid for no time has expired; one for more than a
            # week cannot be honoured).
            raise S3Error(
                "AccessDenied",
                "X-Amz-Expires must be between 1 and 604800 seconds",
                Expires=str(expires),
            )
        access_key, date, region, service = self._credential_scope(credential)
        moment = _parse_amz_date(amz_date)
        if now > moment + timedelta(seconds=expires):
            raise S3Error("AccessDenied", "Request has expired", Expires=str(expires))
        if moment - now > MAX_SKEW:
            raise S3Error("AccessDenied", "Request is not valid yet")
        payload_hash = params.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
        return self._check(
            method,
            raw_path,
            canonical_query(raw_query, skip="X-Amz-Signature"),
            canonical_headers(headers, signed),
            signed,
            payload_hash,
            amz_date,
            f"{date}/{region}/{service}/aws4_request",
            signing_key(self.credentials.secret_key, date, region, service),
            signature,
            access_key,
            presigned=True,
        )

    def _check(
        self,
        method: str,
        raw_path: str,
        query: str,
        headers: str,
        signed: list[str],
        payload_hash: str,
        amz_date: str,
        scope: str,
        key: bytes,
        signature: str,
        access_key: str,
        *,
        presigned: bool,
    ) -> Authorization:
        if "host" not in signed:
            # Unsigned, the Host header could be changed in transit: a request signed for one
            # server (or bucket, virtual-host style) would be replayed against another.
            raise S3Error("AccessDenied", "SignedHeaders must include host")
        for path in _path_candidates(raw_path):
            canonical = "\n".join([method, path, query, headers, ";".join(signed), payload_hash])
            for form in signed_forms(canonical):
                string_to_sign = "\n".join(
                    [ALGORITHM, amz_date, scope, hashlib.sha256(form).hexdigest()]
                )
                if signatures_equal(sign(key, string_to_sign), signature):
                    return Authorization(
                        access_key, amz_date, scope, key, signature, payload_hash, presigned
                    )
        raise _signature_mismatch()


def signed_forms(text: str) -> list[bytes]:
    """The bytes a client may have signed for `text`, whose header values were received as
    bytes and decoded as Latin-1: the text as UTF-8 (what botocore and minio-py sign for a
    Latin-1 value they send), and, when a value is not ASCII, the bytes as received (what
    clients that send UTF-8 header values, such as the Go and Java SDKs, sign)."""
    forms = [text.encode("utf-8", "surrogatepass")]
    if not text.isascii():
        try:
            forms.append(text.encode("latin-1"))
        except UnicodeEncodeError:
            pass  # a decoded query value beyond Latin-1: only the UTF-8 form exists
    return forms


def _signature_mismatch() -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        "the request signature we calculated does not match the signature you provided; "
        "check your key and signing method",
    )


def _path_candidates(raw_path: str) -> list[str]:
    """Clients sign the path as they send it; a few normalise its encoding differently, so the
    re-encoded form of the decoded path is the second candidate."""
    candidates = [raw_path or "/"]
    reencoded = uri_encode(unquote(raw_path or "/"), keep_slash=True)
    if reencoded != candidates[0]:
        candidates.append(reencoded)
    return candidates


def _query_parameters(raw_query: str) -> dict[str, str]:
    """Decoded query parameters; the first of repeated ones counts."""
    params: dict[str, str] = {}
    for item in raw_query.split("&"):
        name, _, value = item.partition("=")
        params.setdefault(unquote(name), unquote(value))
    return params


def _first(headers: Mapping[str, list[str]], name: str) -> str:
    return (headers.get(name) or [""])[0]


def _amz_headers(headers: Mapping[str, list[str]]) -> dict[str, str]:
    return {
        name: ",".join(_SPACES.sub(" ", value.strip()) for value in values)
        for name, values in headers.items()
        if name.startswith("x-amz-")
    }


def _parse_http_date(value: str) -> datetime:
    """A Date or x-amz-date of SigV2: an HTTP date, or the ISO 8601 form some clients send."""
    if _AMZ_DATE.fullmatch(value):
        return _parse_amz_date(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError) as error:
        raise S3Error("AccessDenied", f"invalid request date {value!r}") from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def chunk_string_to_sign(auth: Authorization, previous: str, chunk_sha256: str) -> str:
    return "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            auth.amz_date,
            auth.scope,
            previous,
            EMPTY_SHA256,
            chunk_sha256,
        ]
    )


def trailer_string_to_sign(auth: Authorization, previous: str, trailer: bytes) -> str:
    return "\n".join(
        [
            "AWS4-HMAC-SHA256-TRAILER",
            auth.amz_date,
            auth.scope,
            previous,
            hashlib.sha256(trailer).hexdigest(),
        ]
    )
