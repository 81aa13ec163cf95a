"""Listing with prefix, delimiter and markers, shared by ListObjects, ListObjectsV2 and
ListObjectVersions.

Keys are read in byte order from the store a page at a time; with a delimiter, a whole
"folder" collapses into one common prefix and the next query jumps past it, so listing the top
level of a bucket with a million keys in a few folders costs a few queries, not a million rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oscarpy.storage.store import ObjectDetails, ObjectStore

#: Sorts after every key that starts with a given prefix (the highest code point).
_BEYOND = "\U0010ffff"
MAX_KEYS = 1000


@dataclass
class Listing:
    contents: list[ObjectDetails] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_marker: str = ""
    """The last key or common prefix returned: where the next page starts."""


def list_entries(
    store: ObjectStore, bucket: str, prefix: str, delimiter: str, after: str, max_keys: int
) -> Listing:
    listing = Listing()
    if max_keys <= 0:
        return listing
    cursor = after
    if (
        delimiter
        and len(after) > len(prefix)
        and after.startswith(prefix)
        and after.endswith(delimiter)
    ):
        # Resuming after a common prefix: skip everything under it.
        cursor = after + _BEYOND
    count = 0
    while True:
        page = store.list_page(bucket, prefix=prefix, after=cursor, limit=max_keys - count + 1)
        for found in page:
            if count == max_keys:
                listing.truncated = True
                return listing
            count += 1
            position = found.key.find(delimiter, len(prefix)) if delimiter else -1
            if position >= 0:
                common = found.key[: position + len(delimiter)]
                listing.prefixes.append(common)
                listing.next_marker = common
                cursor = common + _BEYOND
                break  # query again from beyond this common prefix
            listing.contents.append(found)
            listing.next_marker = found.key
        else:
            # The page ended without reaching max_keys + 1 entries: nothing is left.
            return listing
