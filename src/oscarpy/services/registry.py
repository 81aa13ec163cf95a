"""The registered services: rows of the state DB, their buckets, and who wants to hear of changes.

Registering a service is one database write plus creating any missing bucket and folder in the
embedded store; nothing restarts. Listeners (the job engine) hear `"created"`, `"updated"` and
`"deleted"` after the change is committed.
"""

from __future__ import annotations

import builtins
import json
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy import DateTime, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from oscarpy.auth.buckets import BucketAccessTable
from oscarpy.auth.principal import ADMIN_USER_ID
from oscarpy.db import Base, Database, utcnow
from oscarpy.gpu import host_has_gpu
from oscarpy.log import register_secret
from oscarpy.services.errors import ServiceDefinitionError, ServiceExists, ServiceNotFound
from oscarpy.services.images import AllowedImages
from oscarpy.services.isolation import outputs_for, private_buckets, watched_inputs
from oscarpy.services.model import Service

log = logging.getLogger(__name__)

#: OSCAR's owner of services created with the admin's Basic credentials.
ADMIN_OWNER = ADMIN_USER_ID

Listener = Callable[[str, Service], None]


class BucketStore(Protocol):
    """What the registry needs of `oscarpy.storage.store.ObjectStore`."""

    def ensure_bucket(self, name: str) -> None: ...

    def ensure_folder(self, bucket: str, folder: str) -> None: ...

    def delete_bucket(self, name: str, force: bool = False) -> None: ...

    def bucket_exists(self, name: str) -> bool: ...


class ServiceRecord(Base):
    """One service; `definition` is its JSON, secrets included (the state DB is the admin's)."""

    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(39), primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def generate_token() -> str:
    """64 hex characters, as OSCAR's service tokens."""
    return secrets.token_hex(32)


def _load(record: ServiceRecord) -> Service:
    service = Service.model_validate(json.loads(record.definition))
    for secret in service.secret_values():
        register_secret(secret)
    return service


def _refuse_placeholders(service: Service) -> None:
    placeholders = service.hidden_placeholders()
    if placeholders:
        raise ServiceDefinitionError(
            f"{', '.join(placeholders)}: 'hidden' stands for a stored key, and there is none "
            "for this provider; give the key itself"
        )


def _dump(service: Service) -> str:
    return json.dumps(service.to_json(), sort_keys=True)


class ServiceRegistry:
    """Create, read, update and delete services; thread-safe, as API routes run in threads."""

    def __init__(self, database: Database, store: BucketStore) -> None:
        self.database = database
        self.store = store
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        self.allowed_images = AllowedImages(database)
        self.gpu_optional = False
        """`OSCAR_GPU=optional`: a service asking for a GPU this host lacks is accepted with a
        warning (its jobs run on the CPU) instead of refused."""
        self.gpu_on_nodes = False
        """Cluster mode: GPUs are on the nodes labelled `gpu=true`, not on this host, so
        `enable_gpu` is never refused for this host's lack of one."""

    def add_listener(self, callback: Listener) -> None:
        """Call `callback(event, service)` after each committed change."""
        with self._listeners_lock:
            self._listeners.append(callback)

    def create(self, service: Service) -> Service:
        """Register a new service with a fresh token; raises `ServiceExists`."""
        if self.get(service.name) is not None:
            raise ServiceExists(service.name)
        _refuse_placeholders(service)
        self.allowed_images.check(service.image)
        self._check_gpu(service)
        service = service.model_copy(
            update={"token": generate_token(), "owner": service.owner or ADMIN_OWNER}
        )
        for secret in service.secret_values():
            register_secret(secret)
        self._prepare_storage(service)
        now = utcnow()
        try:
            with self.database.session() as session:
                session.add(
                    ServiceRecord(
                        name=service.name,
                        definition=_dump(service),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise ServiceExists(service.name) from None
        log.info("service %s created", service.name)
        self._notify("created", service)
        return service

    def update(self, service: Service) -> Service:
        """Replace a service's definition, keeping its token, owner and unchanged secrets."""
        stored = self.get(service.name)
        if stored is None:
            raise ServiceNotFound(service.name)
        service = service.with_secrets_from(stored).model_copy(
            update={"token": stored.token, "owner": stored.owner}
        )
        _refuse_placeholders(service)
        if service.image != stored.image:  # a service the list now excludes can still be edited
            self.allowed_images.check(service.image)
        self._check_gpu(service)
        for secret in service.secret_values():
            register_secret(secret)
        # Buckets first, outside the transaction: the store commits in its own sessions.
        self._prepare_storage(service)
        with self.database.session() as session:
            record = session.get(ServiceRecord, service.name)
            if record is None:
                raise ServiceNotFound(service.name)
            record.definition = _dump(service)
            record.updated_at = utcnow()
        log.info("service %s updated", service.name)
        self._notify("updated", service)
        return service

    def _check_gpu(self, service: Service) -> None:
        """`enable_gpu` on a host without one: refused, or (optional) a warning on `service`."""
        if not service.enable_gpu or self.gpu_on_nodes or host_has_gpu():
            return
        if not self.gpu_optional:
            raise ServiceDefinitionError(
                "enable_gpu: this host has no GPU (no NVIDIA driver); drop enable_gpu, or run "
                "the server with OSCAR_GPU=optional to run such services on the CPU"
            )
        service._warnings.append(  # noqa: SLF001 (the definition's own warnings)
            "enable_gpu: this host has no GPU; the service's jobs run on the CPU"
        )

    def delete(self, name: str, delete_buckets: bool = False) -> None:
        """Remove a service; its buckets and their files stay unless `delete_buckets`.

        Even then a bucket another service still uses is kept, with its files.
        """
        with self.database.session() as session:
            record = session.get(ServiceRecord, name)
            if record is None:
                raise ServiceNotFound(name)
            service = _load(record)
            session.delete(record)
        log.info("service %s deleted", name)
        if delete_buckets:
            self._delete_buckets(service)
        self._notify("deleted", service)

    def get(self, name: str) -> Service | None:
        with self.database.session() as session:
            record = session.get(ServiceRecord, name)
            return _load(record) if record is not None else None

    def versions(self) -> dict[str, datetime]:
        """Each service's name and when it was last written: a cheap way to tell whether a
        list read earlier is still the registry's (a definition is parsed only on a change)."""
        with self.database.session() as session:
            rows = session.execute(select(ServiceRecord.name, ServiceRecord.updated_at))
            return {str(name): updated for name, updated in rows}

    def list(self) -> builtins.list[Service]:
        with self.database.session() as session:
            records = session.scalars(select(ServiceRecord).order_by(ServiceRecord.name)).all()
            return [_load(record) for record in records]

    def _prepare_storage(self, service: Service) -> None:
        """Create the service's missing buckets and folders in the embedded store.

        A bucket made for a service is its owner's, shared as the service is (as OSCAR does);
        while it stays the service's its sharing follows the service's on update, but it is
        never readable anonymously unless its owner publishes it (an S3 ACL or policy). An existing
        bucket is fine and shared: two services may use one bucket, and its owner stays.
        """
        access = BucketAccessTable(self.database)
        for path in service.embedded_paths():
            if not self.store.bucket_exists(path.bucket):
                self.store.ensure_bucket(path.bucket)
                # Signed-in users only, even when public: a service's data is not published.
                access.claim(
                    path.bucket,
                    service.owner or ADMIN_OWNER,
                    service=service.name,
                    anonymous_read=False,
                )
            if access.get(path.bucket).service == service.name:
                access.update(
                    path.bucket,
                    visibility=service.visibility,
                    allowed_users=service.allowed_users,
                )
            if path.folder:
                self.store.ensure_folder(path.bucket, path.folder)
        for bucket, user in private_buckets(service).items():
            if not self.store.bucket_exists(bucket):
                self.store.ensure_bucket(bucket)
                access.claim(bucket, user, service=service.name, anonymous_read=False)
            for path in [*watched_inputs(service), *outputs_for(service, bucket)]:
                if path.bucket == bucket and path.folder:
                    self.store.ensure_folder(bucket, path.folder)

    def _delete_buckets(self, service: Service) -> None:
        in_use = {
            path.bucket
            for other in self.list()
            for path in other.embedded_paths()
            if other.name != service.name
        }
        owned = {path.bucket for path in service.embedded_paths()} | set(private_buckets(service))
        for bucket in sorted(owned):
            if bucket in in_use:
                log.info("bucket %s kept: another service still uses it", bucket)
                continue
            if self.store.bucket_exists(bucket):
                self.store.delete_bucket(bucket, force=True)
                BucketAccessTable(self.database).forget(bucket)
                log.info("bucket %s of service %s deleted", bucket, service.name)

    def _notify(self, event: str, service: Service) -> None:
        with self._listeners_lock:
            listeners = builtins.list(self._listeners)
        for listener in listeners:
            try:
                listener(event, service)
            except Exception:
                # A failing listener must not undo a committed change nor starve the others.
                log.exception("listener %r failed on %s of %s", listener, event, service.name)
