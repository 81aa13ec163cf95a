"""The one table from the domain's exceptions to HTTP statuses, for every edge that answers HTTP.

The REST API (`api/errors.py`) and the dashboard (`web/dashboard.py`) answer each exception
below with the status drawn beside it; the S3 edge gives each storage class its S3 error code
(`s3/errors.py`), whose status is this one too, but for the bare `StorageError` (there the
storage is the server itself: `InternalError`, 500).

    ServiceError                     services/errors.py                            500
    ├── ServiceDefinitionError       a definition is invalid                       400
    ├── ServiceExists                create with a name already taken              409
    ├── ServiceNotFound              no such service                               404
    └── ServiceForbidden             its visibility or owner does not let the caller 403
    EngineError                      engine/errors.py                              500
    ├── InfrastructureError          the platform could not run it; try later      503
    │   ├── RuntimeUnavailable       the container engine does not answer          503
    │   │   └── RuntimeLost          the connection broke or timed out mid-call    503
    │   ├── ImageUnavailable         the image is absent and cannot be pulled      503
    │   ├── StagingError             inputs or outputs could not be staged         503
    │   ├── ContainerError           the engine refused or lost the container      503
    │   │   ├── ContainerMissing     no such container (any more)                  503
    │   │   └── ContainerConflict    its state forbids the call                    503
    │   └── PoolExhausted            no warm container freed up in time (/run)     503
    ├── JobNotFound                  no such job (for that service)                404
    ├── EventNotAllowed              a token's event names another's object        403
    ├── InvalidJobOperation          the job's state does not allow it             409
    ├── NotExposed                   an exposed service's route, no `expose`       400
    ├── InvocationError              a /run request cannot be run as sent          400
    │   ├── InvalidBody              neither JSON nor base64                       400
    │   └── BodyTooLarge             over the configured limit                     413
    ├── Cancelled                    the job was deleted before its script ran     409
    ├── ContainerGone                a warm container died before the script       503
    └── ScalingError                 a node provider refused a step (only logged)  503
    StorageError                     storage/errors.py; a storage failed           502
    ├── ObjectNotFound               no such object                                404
    │   └── VersionNotFound          no such version of it                         404
    ├── BucketNotFound               no such bucket                                404
    ├── BucketNotEmpty               the bucket still holds objects                409
    ├── InvalidBucketName            the name breaks the S3 naming rules           400
    ├── InvalidObjectKey             the key is empty or holds a NUL               400
    │   └── ObjectKeyTooLong         the key is over 1024 bytes                    400
    ├── UploadNotFound               no such multipart upload                      404
    ├── InvalidPart                  a part is missing or its ETag differs         400
    ├── InvalidPartOrder             the parts are out of order                    400
    ├── PartTooSmall                 a part but the last is under 5 MiB            400
    ├── PreconditionFailed           a conditional write's condition did not hold  412
    └── ChecksumMismatch             a declared checksum differs                   400

Any error whose cause is a full disk is 507 (the client may retry later); anything else, 500.
Every class has its own row, so that adding one is a decision (a unit test checks there is no
class without a row); `status_of` looks a class up along its MRO.
"""

from __future__ import annotations

from collections.abc import Mapping

from oscarpy.engine.errors import (
    Cancelled,
    ContainerConflict,
    ContainerError,
    ContainerGone,
    ContainerMissing,
    EngineError,
    EventNotAllowed,
    ImageUnavailable,
    InfrastructureError,
    InvalidJobOperation,
    JobNotFound,
    NotExposed,
    RuntimeLost,
    RuntimeUnavailable,
    ScalingError,
    StagingError,
)
from oscarpy.engine.run.errors import (
    BodyTooLarge,
    InvalidBody,
    InvocationError,
    PoolExhausted,
)
from oscarpy.services.errors import (
    ServiceDefinitionError,
    ServiceError,
    ServiceExists,
    ServiceForbidden,
    ServiceNotFound,
)
from oscarpy.storage.errors import (
    BucketNotEmpty,
    BucketNotFound,
    ChecksumMismatch,
    InvalidBucketName,
    InvalidObjectKey,
    InvalidPart,
    InvalidPartOrder,
    ObjectKeyTooLong,
    ObjectNotFound,
    PartTooSmall,
    PreconditionFailed,
    StorageError,
    UploadNotFound,
    VersionNotFound,
    is_disk_full,
)

__all__ = ["DOMAIN_ERRORS", "STATUS", "status_of"]

#: The roots of the domain's trees: what an edge catches to answer with `status_of`.
DOMAIN_ERRORS: tuple[type[Exception], ...] = (ServiceError, EngineError, StorageError)

DISK_FULL = 507
UNEXPECTED = 500

STATUS: Mapping[type[Exception], int] = {
    ServiceError: 500,  # never raised bare
    ServiceDefinitionError: 400,
    # OSCAR answers 400 to a duplicate name; 409 says what happened.
    ServiceExists: 409,
    ServiceNotFound: 404,
    ServiceForbidden: 403,
    EngineError: 500,  # never raised bare
    InfrastructureError: 503,
    RuntimeUnavailable: 503,
    RuntimeLost: 503,
    ImageUnavailable: 503,
    StagingError: 503,
    ContainerError: 503,
    ContainerMissing: 503,
    ContainerConflict: 503,
    PoolExhausted: 503,
    ScalingError: 503,
    JobNotFound: 404,
    EventNotAllowed: 403,
    InvalidJobOperation: 409,
    NotExposed: 400,
    InvocationError: 400,
    InvalidBody: 400,
    BodyTooLarge: 413,
    Cancelled: 409,
    ContainerGone: 503,
    # A failure of the storage the server depends on (an unreachable S3 endpoint, refused
    # credentials): the server is a gateway to it.
    StorageError: 502,
    ObjectNotFound: 404,
    VersionNotFound: 404,
    BucketNotFound: 404,
    BucketNotEmpty: 409,
    InvalidBucketName: 400,
    InvalidObjectKey: 400,
    ObjectKeyTooLong: 400,
    UploadNotFound: 404,
    InvalidPart: 400,
    InvalidPartOrder: 400,
    PartTooSmall: 400,
    PreconditionFailed: 412,
    ChecksumMismatch: 400,
}


def status_of(error: BaseException) -> int:
    """The status to answer `error` with: 507 if a full disk caused it, else the row of its
    most specific class in `STATUS`, else 500."""
    if is_disk_full(error):
        return DISK_FULL
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return UNEXPECTED
