"""AWS Signature Version 4 as S3 checks it: in the Authorization header, in presigned query
strings, and the per-chunk signatures of streaming uploads.

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
from urllib.parse import quote, unquote

from oscarpy.s3.errors import S3Error, not_implemented

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
    ) -> Authorization:
        now = now or datetime.now(UTC)
        header = (headers.get("authorization") or [""])[0]
        query_lower = raw_query.lower()
        if header.startswith(ALGORITHM):
            return self._verify_header(method, raw_path, raw_query, headers, header, now)
        if "x-amz-algorithm=" in query_lower or "x-amz-credential=" in query_lower:
            return self._verify_query(method, raw_path, raw_query, headers, now)
        if header.startswith("AWS ") or "awsaccesskeyid=" in query_lower:
            raise not_implemented("AWS Signature Version 2 (use Signature Version 4)")
        raise S3Error("AccessDenied", "anonymous requests are not allowed; sign with SigV4")

    def _credential_scope(self, credential: str) -> tuple[str, str, str, str]:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise S3Error(
                "AuthorizationQueryParametersError",
                "the credential must be <key>/<date>/<region>/<service>/aws4_request",
            )
        access_key, date, region, service, _ = parts
        if not hmac.compare_digest(access_key.encode(), self.credentials.access_key.encode()):
            raise S3Error(
                "InvalidAccessKeyId", "the access key id you provided does not exist in our records"
            )
        return access_key, date, region, service

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
        params: dict[str, str] = {}
        for item in raw_query.split("&"):
            name, _, value = item.partition("=")
            params[unquote(name)] = unquote(value)
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
            raise S3Error(
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be between 1 and 604800 seconds",
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
        # Clients sign the path as they send it; a few normalise its encoding differently,
        # so the re-encoded form of the decoded path is the second candidate.
        candidates = [raw_path or "/"]
        reencoded = uri_encode(unquote(raw_path or "/"), keep_slash=True)
        if reencoded != candidates[0]:
            candidates.append(reencoded)
        for path in candidates:
            canonical = "\n".join([method, path, query, headers, ";".join(signed), payload_hash])
            string_to_sign = "\n".join(
                [ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
            )
            if signatures_equal(sign(key, string_to_sign), signature):
                return Authorization(
                    access_key, amz_date, scope, key, signature, payload_hash, presigned
                )
        raise S3Error(
            "SignatureDoesNotMatch",
            "the request signature we calculated does not match the signature you provided; "
            "check your key and signing method",
        )


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
