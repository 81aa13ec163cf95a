"""Listing with a delimiter on both state DBs: the same entries as a plain reading of S3's
rules, page after page, at a cost per page that does not grow with the bucket."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from oscarpy.db import Database
from oscarpy.s3.listing import list_entries
from oscarpy.storage.rows import OBJECTS
from oscarpy.storage.store import ObjectStore

BUCKET = "listed"


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[ObjectStore]:
    database = Database(database_url)
    database.migrate()
    created = ObjectStore(database, tmp_path / "data")
    created.create_bucket(BUCKET)
    yield created
    database.close()


def insert_keys(store: ObjectStore, keys: list[str]) -> None:
    moment = datetime.now(UTC)
    with store.database.engine.begin() as connection:
        connection.execute(
            insert(OBJECTS),
            [
                {
                    "bucket": BUCKET,
                    "key": key,
                    "blob_id": uuid.uuid4().hex,
                    "size": len(key),
                    "etag": "0" * 32,
                    "content_type": "binary/octet-stream",
                    "user_metadata": {},
                    "headers": {},
                    "last_modified": moment,
                }
                for key in keys
            ],
        )


def expected(keys: list[str], prefix: str, delimiter: str) -> list[str]:
    """S3's rules read plainly: keys under the prefix in code point (= UTF-8 byte) order, each
    run of keys sharing a common prefix up to the first delimiter after `prefix` shown once."""
    entries: list[str] = []
    for key in sorted(keys):
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        entry = key[: cut + len(delimiter)] if cut >= 0 else key
        if not entries or entries[-1] != entry:
            entries.append(entry)
    return entries


def listed(store: ObjectStore, prefix: str, delimiter: str, page: int) -> list[str]:
    """Every entry, reading `page` entries at a time and resuming from each page's marker."""
    entries: list[str] = []
    after = ""
    while True:
        listing = list_entries(store, BUCKET, prefix, delimiter, after, page)
        got = sorted([found.key for found in listing.contents] + listing.prefixes)
        assert len(got) <= page
        entries.extend(got)
        if not listing.truncated:
            return entries
        after = listing.next_marker


KEYS = [
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "a//d",
    "a/\U0010ffffz",
    "a0",
    "ab/c",
    "b--c--d",
    "b--e",
    "b-x",
    "photos/2024/jan/1.jpg",
    "photos/2024/jan/2.jpg",
    "photos/2024/feb/1.jpg",
    "photos/2025/x.jpg",
    "photos/readme",
    "Photos/upper",
    "ñandú/ü",
    "ñandú/",
    "日本/語",
    "日本語",
    "z" * 200 + "/deep",
]


@pytest.mark.parametrize("page", [1, 3, 1000])
def test_every_prefix_and_delimiter_lists_as_s3_does_page_after_page(
    store: ObjectStore, page: int
) -> None:
    chance = random.Random(17)
    keys = KEYS + [f"r/{chance.randrange(30)}/{chance.randrange(5)}/{n}" for n in range(60)]
    insert_keys(store, keys)
    for prefix in ["", "a", "a/", "b", "photos/", "photos/2024/", "ñandú", "r/", "r/1", "q"]:
        for delimiter in ["", "/", "--", "-", "ú", "2"]:
            assert listed(store, prefix, delimiter, page) == expected(keys, prefix, delimiter), (
                prefix,
                delimiter,
            )


def test_a_page_of_folders_is_one_query_whatever_the_folders_hold(store: ObjectStore) -> None:
    insert_keys(store, [f"f{folder:04d}/{n:03d}" for folder in range(1500) for n in range(20)])
    statements: list[str] = []

    def count(*arguments: Any) -> None:
        statements.append(arguments[2])

    event.listen(store.database.engine, "before_cursor_execute", count)
    try:
        first = list_entries(store, BUCKET, "", "/", "", 1000)
        second = list_entries(store, BUCKET, "", "/", first.next_marker, 1000)
    finally:
        event.remove(store.database.engine, "before_cursor_execute", count)

    assert first.prefixes == [f"f{folder:04d}/" for folder in range(1000)] and first.truncated
    assert second.prefixes == [f"f{folder:04d}/" for folder in range(1000, 1500)]
    assert not second.truncated and not first.contents and not second.contents
    # One walk of the index per page (a connection may add its own set-up statements).
    assert len([sql for sql in statements if "WITH RECURSIVE" in sql]) == 2
    assert len(statements) <= 4, statements
