"""Conditional writes on both state DBs: the condition holds at the moment of the commit, so
of concurrent writers racing on one key exactly the ones S3's rules allow succeed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from oscarpy.db import Database
from oscarpy.storage.errors import ObjectNotFound, PreconditionFailed
from oscarpy.storage.rows import WriteCondition
from oscarpy.storage.store import ObjectDetails, ObjectStore

WRITERS = 8


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[ObjectStore]:
    database = Database(database_url)
    database.migrate()
    created = ObjectStore(database, tmp_path / "data")
    created.create_bucket("cond")
    yield created
    database.close()


def race(write: Callable[[int], ObjectDetails]) -> tuple[list[ObjectDetails], list[Exception]]:
    """Run `write(n)` for every writer at once; their results and their errors."""
    start = threading.Barrier(WRITERS)
    done: list[ObjectDetails] = []
    failed: list[Exception] = []

    def run(number: int) -> None:
        start.wait()
        try:
            done.append(write(number))
        except Exception as error:  # collected for the assertions
            failed.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done, failed


def put(store: ObjectStore, data: bytes, condition: WriteCondition) -> ObjectDetails:
    return store.commit_object("cond", "key", store.blobs.write_whole(data), condition=condition)


def test_of_racing_creators_exactly_one_creates(store: ObjectStore) -> None:
    done, failed = race(lambda n: put(store, b"writer %d" % n, WriteCondition(if_none_match=True)))

    assert len(done) == 1
    assert len(failed) == WRITERS - 1 and all(isinstance(e, PreconditionFailed) for e in failed)
    found = store.head("cond", "key")
    assert found is not None and found.etag == done[0].etag
    assert len(store.blobs.all_ids()) == 1  # the losers' bytes are gone


def test_of_racing_compare_and_swaps_from_one_etag_exactly_one_wins(store: ObjectStore) -> None:
    first = store.put_bytes("cond", "key", b"version 0")

    done, failed = race(
        lambda n: put(store, b"version %d" % (n + 1), WriteCondition(if_match=first.etag))
    )

    assert len(done) == 1 and all(isinstance(e, PreconditionFailed) for e in failed)
    assert len(failed) == WRITERS - 1


def test_if_match_needs_an_existing_object(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        put(store, b"x", WriteCondition(if_match="*"))
    assert store.head("cond", "key") is None and not store.blobs.all_ids()
