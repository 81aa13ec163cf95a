"""Listing with prefix, delimiter and markers, shared by ListObjects, ListObjectsV2 and
ListObjectVersions.

Keys are read in byte order from the store, one page (plus one entry, to know whether the
listing is truncated) per request; with a delimiter, the store collapses each "folder" into one
common prefix and seeks past it in the same query, so a page of the top level of a bucket with
a million keys costs the same as in a bucket with a thousand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oscarpy.s3.errors import S3Error
from oscarpy.storage.store import ObjectDetails, ObjectStore, successor

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
    entries: list[ObjectDetails | str]
    if delimiter:
        if successor(delimiter) is None:
            raise S3Error("InvalidArgument", "the delimiter is not supported")
        entries = store.list_grouped(
            bucket, prefix=prefix, delimiter=delimiter, after=after, limit=max_keys + 1
        )
    else:
        entries = list(store.list_page(bucket, prefix=prefix, after=after, limit=max_keys + 1))
    if len(entries) > max_keys:
        listing.truncated = True
        entries = entries[:max_keys]
    for entry in entries:
        if isinstance(entry, str):
            listing.prefixes.append(entry)
            listing.next_marker = entry
        else:
            listing.contents.append(entry)
            listing.next_marker = entry.key
    return listing
