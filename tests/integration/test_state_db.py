"""The state store on both databases we support: SQLite (default) and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect, select

from oscarpy.db import Database, SystemMeta


def test_migrations_create_the_schema_and_are_idempotent(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    created = database.meta("created_at")
    database.migrate()
    assert database.meta("created_at") == created is not None
    tables = inspect(database.engine).get_table_names()
    assert {"system_meta", "alembic_version"} <= set(tables)
    database.close()


def test_a_failed_transaction_leaves_nothing_behind(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(SystemMeta(key="half-done", value="x"))
        session.flush()
        raise RuntimeError("crash in the middle")
    assert database.meta("half-done") is None
    database.close()


def test_concurrent_writers_all_commit(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for item in range(20):
                with database.session() as session:
                    session.add(SystemMeta(key=f"w{worker}-{item}", value=str(item)))
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as session:
        keys = session.scalars(select(SystemMeta.key).where(SystemMeta.key.like("w%"))).all()
    assert len(keys) == 80
    database.close()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    database.migrate()
    with database.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"
    database.close()


def test_the_url_is_described_without_its_password() -> None:
    database = Database("postgresql://user:topsecret@localhost/db")
    assert "topsecret" not in database.describe()
    database.close()


def test_the_upload_identity_migration_keeps_old_jobs_and_allows_a_second_upload(
    database_url: str,
) -> None:
    """0005_upload_identity: jobs made before keep their ETag as their upload, and a new upload
    of the same bytes (the same ETag) may then get a job of its own."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from oscarpy.db import MIGRATIONS
    from oscarpy.engine.ledger import Ledger, NewJob
    from oscarpy.engine.records import JobSource

    database = Database(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004_engine")
        connection.execute(
            text(
                "INSERT INTO jobs (id, service, status, source, bucket, key, etag, event, "
                "created_at, next_attempt_at, attempts, script_failures, "
                "infrastructure_failures, log_bytes, log_truncated) VALUES ('old', 'svc', "
                "'succeeded', 'storage', 'b', 'in/a', 'e1', '{}', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP, 1, 0, 0, 0, false)"
            )
        )
    database.migrate()
    ledger = Ledger(database, log_cap=1000)
    assert ledger.find_upload("svc", "b", "in/a", "e1") == "old"
    again = NewJob(
        "svc", JobSource.STORAGE, "{}", "minio.default", "b", "in/a", "e1", upload="e1@t"
    )
    assert ledger.add_job(again) is not None
    assert ledger.add_job(again) is None
    database.close()
