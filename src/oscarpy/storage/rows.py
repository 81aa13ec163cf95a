"""Writing one object's row and its event: the serialised section of every object write.

The same statements run two ways. Through SQLAlchemy on a session's connection (PostgreSQL, and
writes that are part of a bigger transaction, such as completing a multipart upload); or, for
SQLite's group commit, compiled once and run on the driver's own connection. SQLAlchemy's
execution layer costs tens of microseconds a statement, several times what SQLite needs for
these; under the write lock that cost is paid one object after another, so it bounds the rate
of small PUTs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, func, insert, literal_column, select, text, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Insert, Select, Update

from oscarpy.storage.errors import BucketNotFound, ObjectNotFound, PreconditionFailed
from oscarpy.storage.events import ObjectEvent
from oscarpy.storage.tables import BucketRow, ObjectRow

Statement = Select[Any] | Insert | Update
OBJECTS = cast(Table, ObjectRow.__table__)
EVENTS = cast(Table, ObjectEvent.__table__)
OBJECT_COLUMNS = (
    "blob_id",
    "size",
    "etag",
    "content_type",
    "user_metadata",
    "headers",
    "last_modified",
    "part_sizes",
    "checksum",
    "version_id",
)
_EVENT_COLUMNS = ("kind", "bucket", "key", "size", "etag", "occurred_at")
# Statements built once and executed with parameters: building them per write costs more
# than running them.
#: The bucket's versioning status, "" if it never had one; no row if there is no bucket.
_BUCKET_EXISTS = select(func.coalesce(BucketRow.versioning, literal_column("''"))).where(
    BucketRow.name == bindparam("name")
)
_PREVIOUS_BLOB = select(OBJECTS.c.blob_id).where(
    (OBJECTS.c.bucket == bindparam("match_bucket")) & (OBJECTS.c.key == bindparam("match_key"))
)
_CURRENT_ETAG = select(OBJECTS.c.etag).where(
    (OBJECTS.c.bucket == bindparam("match_bucket")) & (OBJECTS.c.key == bindparam("match_key"))
)
_INSERT_OBJECT = insert(OBJECTS)
_UPDATE_OBJECT = (
    update(OBJECTS)
    .where(
        (OBJECTS.c.bucket == bindparam("match_bucket")) & (OBJECTS.c.key == bindparam("match_key"))
    )
    .values({name: bindparam(name) for name in OBJECT_COLUMNS})
)
_INSERT_EVENT = insert(EVENTS)
_COLUMN_KEYS: dict[Statement, list[str]] = {
    _INSERT_OBJECT: ["bucket", "key", *OBJECT_COLUMNS],
    _INSERT_EVENT: list(_EVENT_COLUMNS),
}
#: On PostgreSQL every transaction that records events takes this lock, held until it commits,
#: so that event ids commit in ascending order and a consumer reading "every id above my
#: cursor" never skips an event committed late with a lower id (SQLite runs one writer at a
#: time).
_EVENT_ORDER_LOCK = text("SELECT pg_advisory_xact_lock(7368021)")


class Rows(Protocol):
    """Runs the statements of this module inside the caller's transaction."""

    def first(self, statement: Statement, parameters: dict[str, Any]) -> Any:
        """The first column of the first row, or None when there is no row."""
        ...

    def run(self, statement: Statement, parameters: dict[str, Any]) -> None: ...

    def order_events(self) -> None:
        """Before recording an event: make event ids commit in ascending order."""
        ...


class SessionRows:
    """Through SQLAlchemy, on any dialect."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def first(self, statement: Statement, parameters: dict[str, Any]) -> Any:
        return self.connection.execute(statement, parameters).scalar()

    def run(self, statement: Statement, parameters: dict[str, Any]) -> None:
        self.connection.execute(statement, parameters)

    def order_events(self) -> None:
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(_EVENT_ORDER_LOCK)


class _DriverStatement:
    """A statement compiled for SQLite once, with its parameters' order and bind processors
    (JSON, datetimes), so that rows read back through SQLAlchemy exactly as if written by it."""

    def __init__(self, statement: Statement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=_COLUMN_KEYS.get(statement))
        self.sql = compiled.string
        names: Sequence[str] = compiled.positiontup or []
        binds = compiled.binds
        self.parameters: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names
        ]

    def values(self, parameters: dict[str, Any]) -> list[Any]:
        return [
            process(parameters[name]) if process is not None else parameters[name]
            for name, process in self.parameters
        ]


class DriverStatements:
    """This module's statements compiled for one SQLite dialect; build once per store."""

    def __init__(self, dialect: Dialect) -> None:
        self._compiled = {
            statement: _DriverStatement(statement, dialect)
            for statement in (
                _BUCKET_EXISTS,
                _PREVIOUS_BLOB,
                _CURRENT_ETAG,
                _INSERT_OBJECT,
                _UPDATE_OBJECT,
                _INSERT_EVENT,
            )
        }

    def rows(self, cursor: sqlite3.Cursor) -> DriverRows:
        return DriverRows(cursor, self._compiled)


class DriverRows:
    """On the `sqlite3` connection itself (SQLite runs one writer at a time: no event lock)."""

    def __init__(self, cursor: sqlite3.Cursor, compiled: dict[Statement, _DriverStatement]) -> None:
        self.cursor = cursor
        self._compiled = compiled

    def first(self, statement: Statement, parameters: dict[str, Any]) -> Any:
        compiled = self._compiled[statement]
        row = self.cursor.execute(compiled.sql, compiled.values(parameters)).fetchone()
        return None if row is None else row[0]

    def run(self, statement: Statement, parameters: dict[str, Any]) -> None:
        compiled = self._compiled[statement]
        self.cursor.execute(compiled.sql, compiled.values(parameters))

    def order_events(self) -> None:
        pass


class VersionedWrite(Exception):  # noqa: N818 - a signal, not an error
    """The bucket has versioning: `write_object_row` wrote nothing, and the write must keep the
    version it replaces (`ObjectStore` does that through a session)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class WriteCondition:
    """What must hold of the current object for a conditional write to replace it."""

    if_match: str | None = None
    """Its ETag (unquoted), or "*" for any: the object must exist."""
    if_none_match: bool = False
    """`If-None-Match: *`: the object must not exist."""

    def check(self, current_etag: str | None, key: str) -> None:
        if self.if_none_match and current_etag is not None:
            raise PreconditionFailed(f"object {key!r} exists (If-None-Match: *)")
        if self.if_match is not None:
            if current_etag is None:
                raise ObjectNotFound(f"object {key!r} not found (If-Match)")
            if self.if_match not in ("*", current_etag):
                raise PreconditionFailed(f"object {key!r} has another ETag (If-Match)")


def write_object_row(
    rows: Rows,
    bucket: str,
    key: str,
    values: dict[str, Any],
    record_event: bool,
    condition: WriteCondition | None = None,
) -> list[str]:
    """Insert or replace the row of `bucket/key` with `values` (the `OBJECT_COLUMNS`), with
    its "created" event if `record_event`. Returns the blob it replaced.

    Raises `BucketNotFound`, or for an unmet `condition` `PreconditionFailed` or
    `ObjectNotFound`, before writing anything: checked here, in the transaction that writes,
    a condition holds at the moment of the write.
    """
    versioning = rows.first(_BUCKET_EXISTS, {"name": bucket})
    if versioning is None:
        raise BucketNotFound(f"bucket {bucket!r} does not exist")
    if versioning:
        raise VersionedWrite(versioning)
    match = {"match_bucket": bucket, "match_key": key}
    if condition is not None:
        condition.check(rows.first(_CURRENT_ETAG, match), key)
    previous = rows.first(_PREVIOUS_BLOB, match)
    if previous is None:
        rows.run(_INSERT_OBJECT, {"bucket": bucket, "key": key, **values})
    else:
        rows.run(_UPDATE_OBJECT, {**match, **values})
    if record_event:
        rows.order_events()
        rows.run(
            _INSERT_EVENT,
            {
                "kind": "created",
                "bucket": bucket,
                "key": key,
                "size": values["size"],
                "etag": values["etag"],
                "occurred_at": values["last_modified"],
            },
        )
    return [] if previous is None else [str(previous)]
