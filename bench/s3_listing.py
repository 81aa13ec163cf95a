"""Time per page of `ListObjectsV2(Delimiter="/")` as a bucket grows.

The bucket holds `--folders` folders (2,000 by default: two pages of common prefixes) whose
objects are spread evenly; it grows to each of `--sizes` objects, and at each size the
benchmark times, as the S3 front-end runs it (`s3.listing.list_entries`, the store's queries
included), the first and second page of 1,000 common prefixes at the root, and one page of
1,000 keys inside one folder. Rows are inserted directly through the store's tables: the
listing is what is measured, not uploads. Each figure is the median of `--repeat` runs.

    python -m bench.s3_listing [--sizes 10000,100000,1000000] [--database sqlite|postgresql]

PostgreSQL is the server at OSCAR_TEST_POSTGRES_URL (a fresh database, dropped afterwards).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert
from tests.support.databases import fresh_postgres_database, sqlite_url

from oscarpy.db import Database
from oscarpy.s3.listing import Listing, list_entries
from oscarpy.storage.rows import OBJECTS
from oscarpy.storage.store import ObjectStore

BUCKET = "listing"
BATCH = 20_000


def key(folder: int, number: int) -> str:
    return f"folder-{folder:05d}/file-{number:07d}.dat"


def grow(database: Database, folders: int, have: int, want: int) -> None:
    """Add objects `have`..`want`-1, dealt round-robin to the folders."""
    moment = datetime.now(UTC)

    def rows(start: int, stop: int) -> Iterator[dict[str, object]]:
        for index in range(start, stop):
            yield {
                "bucket": BUCKET,
                "key": key(index % folders, index // folders),
                "blob_id": uuid.uuid4().hex,
                "size": 1024,
                "etag": "0" * 32,
                "content_type": "binary/octet-stream",
                "user_metadata": {},
                "headers": {},
                "last_modified": moment,
            }

    for start in range(have, want, BATCH):
        with database.engine.begin() as connection:
            connection.execute(insert(OBJECTS), list(rows(start, min(start + BATCH, want))))


def timed(run: Callable[[], Listing], repeat: int) -> tuple[float, Listing]:
    times = []
    listing = Listing()
    for _ in range(repeat):
        started = time.perf_counter()
        listing = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), listing


@contextmanager
def database_url(kind: str, directory: Path) -> Iterator[str]:
    if kind == "postgresql":
        with fresh_postgres_database() as url:
            yield url
    else:
        yield sqlite_url(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--folders", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    with (
        tempfile.TemporaryDirectory() as scratch,
        database_url(arguments.database, Path(scratch)) as url,
    ):
        database = Database(url)
        database.migrate()
        store = ObjectStore(database, Path(scratch))
        store.create_bucket(BUCKET)
        print(f"{arguments.database}, {arguments.folders} folders, median of {arguments.repeat}")
        print(f"{'objects':>10} {'root page 1':>12} {'root page 2':>12} {'in a folder':>12}")
        have = 0
        for size in sizes:
            grow(database, arguments.folders, have, size)
            have = size
            first_time, first = timed(
                lambda: list_entries(store, BUCKET, "", "/", "", 1000), arguments.repeat
            )
            assert len(first.prefixes) == min(1000, arguments.folders), len(first.prefixes)
            second_time, second = timed(
                functools.partial(list_entries, store, BUCKET, "", "/", first.next_marker, 1000),
                arguments.repeat,
            )
            assert len(second.prefixes) == min(1000, max(arguments.folders - 1000, 0))
            inside_time, inside = timed(
                lambda: list_entries(store, BUCKET, key(7, 0)[:13], "/", "", 1000),
                arguments.repeat,
            )
            assert len(inside.contents) == min(1000, size // arguments.folders)
            print(
                f"{size:>10,} {first_time * 1000:>10.1f}ms {second_time * 1000:>10.1f}ms "
                f"{inside_time * 1000:>10.1f}ms",
                flush=True,
            )
        database.close()


if __name__ == "__main__":
    main()
