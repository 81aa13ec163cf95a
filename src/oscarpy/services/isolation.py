"""OSCAR's `isolation_level: USER`: each allowed user of a service gets a private bucket.

For every embedded-store input of the service and every user in `allowed_users` (plus the
owner, as OSCAR adds them), the bucket `<input bucket>-<first 10 characters of the user id>`
is made, owned by that user and private, with the input's and outputs' folders. An upload to
its input folder runs the service like an upload to the shared input does, and the job's
outputs go to the same private bucket, in the outputs' folders: users of one service do not see
each other's files. The shared buckets stay, for whoever may use them.
"""

from __future__ import annotations

from oscarpy.auth.buckets import isolated_bucket
from oscarpy.auth.principal import ADMIN_USER_ID
from oscarpy.services.model import Service, StoragePath


def isolates_users(service: Service) -> bool:
    level = service.oscar_settings.get("isolation_level") or ""
    return str(level).upper() == "USER" and bool(service.allowed_users)


def members(service: Service) -> list[str]:
    """The users who get a private bucket: the allowed users, and the owner (not the admin)."""
    users = list(dict.fromkeys(service.allowed_users))
    if service.owner and service.owner != ADMIN_USER_ID and service.owner not in users:
        users.append(service.owner)
    return users


def moved(path: StoragePath, bucket: str) -> StoragePath:
    """`path` in another bucket, same folder and filters."""
    return path.model_copy(
        update={"path": f"{bucket}/{path.folder}" if path.folder else f"{bucket}/"}
    )


def private_buckets(service: Service) -> dict[str, str]:
    """Each user's private bucket name -> the user."""
    if not isolates_users(service):
        return {}
    found: dict[str, str] = {}
    for path in service.input:
        if service.uses_embedded_store(path):
            for user in members(service):
                found.setdefault(isolated_bucket(path.bucket, user), user)
    return found


def watched_inputs(service: Service) -> list[StoragePath]:
    """The input paths uploads to which run the service: its own, and their copies in every
    user's private bucket."""
    paths = list(service.input)
    if not isolates_users(service):
        return paths
    for path in service.input:
        if service.uses_embedded_store(path):
            paths += [moved(path, isolated_bucket(path.bucket, user)) for user in members(service)]
    return paths


def outputs_for(service: Service, input_bucket: str | None) -> list[StoragePath]:
    """Where a job's outputs go: into the private bucket its input came from, if it did
    (embedded-store outputs only), else the service's outputs."""
    if input_bucket is None or input_bucket not in private_buckets(service):
        return list(service.output)
    return [
        moved(path, input_bucket) if service.uses_embedded_store(path) else path
        for path in service.output
    ]
