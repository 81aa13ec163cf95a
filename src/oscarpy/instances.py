"""Server instances: which `oscar serve` processes sharing the state DB are alive.

Every process start is a new instance, named `<host>/<pid>/<token>` (host and pid only for
people reading logs and labels; the random token tells instances apart). Its row in the state
DB holds a lease that a dedicated heartbeat thread renews; nothing else runs on that thread,
so a slow Docker Engine or a long job cannot make a living instance look dead. An instance
whose lease expired is dead, and only then may others take over its work: its running jobs,
containers, warm directories and uncommitted blobs. Host and pid are never trusted.

A dead instance's row is taken with a row lock (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
that one survivor cleans up after it while the others go on. SQLite serves one process: an
instance starting on SQLite declares every earlier one dead.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from oscarpy.db import Base, Database, UtcDateTime, utcnow
from oscarpy.periodic import Periodic

log = logging.getLogger(__name__)

TOKEN_LENGTH = 16
_RENEWALS_PER_LEASE = 4


class InstanceRow(Base):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


def new_instance_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:TOKEN_LENGTH]}"


def token_of(instance_id: str) -> str:
    """The random part of an instance id: safe as a file name, unique per process start."""
    return instance_id.rpartition("/")[2]


class LeaseLost(RuntimeError):
    """This instance's lease expired before its heartbeat renewed it: others may already run
    its work, so it must not go on."""


def _exit_at_once(error: LeaseLost) -> None:
    log.critical("%s; exiting so that no job runs twice", error)
    os._exit(70)


class Instances:
    """This process's instance and what it knows about the others."""

    def __init__(
        self,
        database: Database,
        lease_seconds: float,
        *,
        instance_id: str | None = None,
        on_lease_lost: Callable[[LeaseLost], None] = _exit_at_once,
    ) -> None:
        self.database = database
        self.id = instance_id or new_instance_id()
        self.token = token_of(self.id)
        self.lease = timedelta(seconds=lease_seconds)
        self._on_lease_lost = on_lease_lost
        self._heartbeat = Periodic(
            "instance-heartbeat", lease_seconds / _RENEWALS_PER_LEASE, self._beat
        )

    # -- this instance --------------------------------------------------------------------

    def start(self) -> None:
        """Register this instance (before it claims any work) and start its heartbeat."""
        self.register()
        self._heartbeat.start()
        log.info("instance %s started (lease %.0f s)", self.id, self.lease.total_seconds())

    def register(self) -> None:
        """Record this instance with a fresh lease (on SQLite, every other one ends)."""
        now = utcnow()
        with self.database.writing() as session:
            if self.database.dialect == "sqlite":
                session.execute(update(InstanceRow).values(expires_at=now))
            session.add(
                InstanceRow(
                    id=self.id, started_at=now, heartbeat_at=now, expires_at=now + self.lease
                )
            )

    def stop(self) -> None:
        """Stop the heartbeat and give the lease up, so that others take over at once."""
        self._heartbeat.stop()
        try:
            with self.database.session() as session:
                session.execute(
                    update(InstanceRow).where(InstanceRow.id == self.id).values(expires_at=utcnow())
                )
        except Exception:  # the lease then simply runs out
            log.exception("cannot give up the lease of instance %s", self.id)

    def renew(self) -> None:
        """Extend the lease; raises `LeaseLost` when it had already expired (or was taken)."""
        now = utcnow()
        with self.database.session() as session:
            renewed = session.scalar(
                update(InstanceRow)
                .where(InstanceRow.id == self.id, InstanceRow.expires_at > now)
                .values(heartbeat_at=now, expires_at=now + self.lease)
                .returning(InstanceRow.id)
            )
        if renewed is None:
            raise LeaseLost(f"the lease of instance {self.id} expired")

    def _beat(self) -> None:
        try:
            self.renew()
        except LeaseLost as error:
            self._heartbeat.cancel()
            self._on_lease_lost(error)
        except Exception:  # the state DB is unreachable: try again until the lease ends
            log.exception("cannot renew the lease of instance %s", self.id)

    # -- the others -----------------------------------------------------------------------

    def live_ids(self) -> set[str]:
        """The instances whose lease runs (this one always among them)."""
        with self.database.session() as session:
            found = set(
                session.scalars(select(InstanceRow.id).where(InstanceRow.expires_at > utcnow()))
            )
        return found | {self.id}

    def live_tokens(self) -> set[str]:
        return {token_of(instance) for instance in self.live_ids()}

    def is_alive(self, instance_id: str) -> bool:
        """Whether `instance_id` holds a running lease; an unknown one (a row already cleaned
        up, or a name from before instances had rows) is dead."""
        if instance_id == self.id:
            return True
        with self.database.session() as session:
            expires = session.scalar(
                select(InstanceRow.expires_at).where(InstanceRow.id == instance_id)
            )
        return expires is not None and expires > utcnow()

    def reap(self, clean: Callable[[str], None]) -> list[str]:
        """Clean up after each dead instance, one survivor per dead instance: its row is
        locked (others skip it) while `clean(id)` runs, then deleted. Returns the ids."""
        with self.database.session() as session:
            dead = list(
                session.scalars(
                    select(InstanceRow.id).where(
                        InstanceRow.expires_at <= utcnow(), InstanceRow.id != self.id
                    )
                )
            )
        reaped = []
        for instance_id in dead:
            with self.database.session() as session:
                locked = session.scalar(
                    select(InstanceRow.id)
                    .where(InstanceRow.id == instance_id, InstanceRow.expires_at <= utcnow())
                    .with_for_update(skip_locked=True)
                )
                if locked is None:
                    continue  # another survivor is at it, or done
                clean(instance_id)
                session.execute(delete(InstanceRow).where(InstanceRow.id == instance_id))
            reaped.append(instance_id)
        return reaped
