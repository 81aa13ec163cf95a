"""S3 errors: the code, HTTP status and XML body clients parse, and the one table that maps the
store's exception classes onto S3 codes (`CODE_OF`). Each code's status is the status
`oscarpy/errors.py` gives the class, but for the bare `StorageError`: behind this edge the
storage is the server itself, so its failure is an `InternalError` (500), not a 502."""

from __future__ import annotations

from xml.sax.saxutils import escape

from oscarpy.storage import errors as store_errors

#: Status of each S3 error code we answer with.
STATUS: dict[str, int] = {
    "AccessDenied": 403,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InsufficientStorage": 507,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidBucketState": 409,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPolicyDocument": 400,
    "InvalidPartNumber": 416,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "MalformedPolicy": 400,
    "MalformedPOSTRequest": 400,
    "MalformedXML": 400,
    "MetadataTooLarge": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchBucketPolicy": 404,
    "NoSuchKey": 404,
    "NoSuchPublicAccessBlockConfiguration": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "NotImplemented": 501,
    "ObjectLockConfigurationNotFoundError": 404,
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


#: The S3 code of every storage exception class, each in its own row (a unit test checks).
CODE_OF: dict[type[store_errors.StorageError], str] = {
    store_errors.StorageError: "InternalError",
    store_errors.ObjectNotFound: "NoSuchKey",
    store_errors.VersionNotFound: "NoSuchVersion",
    store_errors.BucketNotFound: "NoSuchBucket",
    store_errors.BucketNotEmpty: "BucketNotEmpty",
    store_errors.InvalidBucketName: "InvalidBucketName",
    store_errors.InvalidObjectKey: "InvalidArgument",
    store_errors.ObjectKeyTooLong: "KeyTooLongError",
    store_errors.UploadNotFound: "NoSuchUpload",
    store_errors.InvalidPart: "InvalidPart",
    store_errors.InvalidPartOrder: "InvalidPartOrder",
    store_errors.PartTooSmall: "EntityTooSmall",
    store_errors.PreconditionFailed: "PreconditionFailed",
    store_errors.ChecksumMismatch: "BadDigest",
}


def from_store_error(error: store_errors.StorageError) -> S3Error:
    """The S3 answer to a store error: the code of its most specific class in `CODE_OF`."""
    code = next(CODE_OF[kind] for kind in type(error).__mro__ if kind in CODE_OF)
    return S3Error(code, str(error))
