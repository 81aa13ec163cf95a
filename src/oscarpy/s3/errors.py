"""S3 errors: the code, HTTP status and XML body clients parse, and the one table that maps the
store's exceptions onto them."""

from __future__ import annotations

from xml.sax.saxutils import escape

from oscarpy.storage import errors as store_errors

#: Status of each S3 error code we answer with.
STATUS: dict[str, int] = {
    "AccessDenied": 403,
    "BadDigest": 400,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InsufficientStorage": 507,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MetadataTooLarge": 400,
    "MissingContentLength": 411,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "AuthorizationQueryParametersError": 400,
    "XAmzContentSHA256Mismatch": 400,
}


class S3Error(Exception):
    """An answer in the S3 error format; raised anywhere below the app, rendered at its edge."""

    def __init__(self, code: str, message: str, **details: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = STATUS[code]
        self.details = details
        self.headers: dict[str, str] = {}

    def xml(self, resource: str, request_id: str) -> bytes:
        extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in self.details.items())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{extra}"
            f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
        ).encode()


def not_implemented(what: str) -> S3Error:
    return S3Error("NotImplemented", f"{what} is not implemented by this server")


_STORE_ERRORS: list[tuple[type[Exception], str]] = [
    (store_errors.BucketNotFound, "NoSuchBucket"),
    (store_errors.ObjectNotFound, "NoSuchKey"),
    (store_errors.BucketNotEmpty, "BucketNotEmpty"),
    (store_errors.InvalidBucketName, "InvalidBucketName"),
    (store_errors.InvalidObjectKey, "KeyTooLongError"),
    (store_errors.UploadNotFound, "NoSuchUpload"),
    (store_errors.InvalidPart, "InvalidPart"),
    (store_errors.InvalidPartOrder, "InvalidPartOrder"),
    (store_errors.PartTooSmall, "EntityTooSmall"),
]


def from_store_error(error: store_errors.StorageError) -> S3Error:
    for kind, code in _STORE_ERRORS:
        if isinstance(error, kind):
            if kind is store_errors.InvalidObjectKey and "long" not in str(error):
                return S3Error("InvalidArgument", str(error))
            return S3Error(code, str(error))
    return S3Error("InternalError", str(error))
