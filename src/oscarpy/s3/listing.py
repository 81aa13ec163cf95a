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
from oscarpy.storage.store import ObjectDetails, ObjectStore, VersionEntry, successor

MAX_KEYS = 1000


@dataclass
class Listing:
    contents: list[ObjectDetails] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    next_marker: str = ""
    """The last key or common prefix returned: where the next page starts."""


def _beyond(delimiter: str) -> str:
    """What follows every key that has `delimiter` where a common prefix ends."""
    beyond = successor(delimiter)
    if beyond is None:
        raise S3Error("InvalidArgument", "the delimiter is not supported")
    return beyond


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix `key` rolls up into (up to and including the first delimiter after
    `prefix`), or None."""
    cut = key.find(delimiter, len(prefix)) if delimiter else -1
    return key[: cut + len(delimiter)] if cut >= 0 else None


def list_entries(
    store: ObjectStore, bucket: str, prefix: str, delimiter: str, after: str, max_keys: int
) -> Listing:
    listing = Listing()
    if max_keys <= 0:
        return listing
    entries: list[ObjectDetails | str]
    if delimiter:
        _beyond(delimiter)
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


@dataclass
class VersionListing:
    entries: list[VersionEntry | str] = field(default_factory=list)
    """Versions and delete markers, and common prefixes, in key order."""
    truncated: bool = False


def list_version_entries(
    store: ObjectStore,
    bucket: str,
    *,
    prefix: str,
    delimiter: str,
    key_marker: str,
    version_marker: str | None,
    max_keys: int,
) -> VersionListing:
    """A page of ListObjectVersions: after (`key_marker`, `version_marker`) as
    `ObjectStore.list_versions` takes them; with a delimiter, the versions of keys under a
    common prefix are that prefix once (as S3 counts it, one entry of the page), and a
    `key_marker` that is a common prefix resumes after every key under it."""
    listing = VersionListing()
    if max_keys <= 0:
        return listing
    beyond = _beyond(delimiter) if delimiter else ""
    start = ""
    if delimiter and _common_prefix(key_marker, prefix, delimiter) == key_marker:
        start, key_marker, version_marker = key_marker[: -len(delimiter)] + beyond, "", None
    found = listing.entries
    while len(found) <= max_keys:
        wanted = max_keys + 1 - len(found)
        batch = store.list_versions(
            bucket,
            prefix=prefix,
            key_marker=key_marker,
            version_marker=version_marker if key_marker else None,
            start=start,
            limit=wanted,
        )
        rolled_up: str | None = None
        for entry in batch:
            key = entry.details.key
            if rolled_up is not None and key.startswith(rolled_up):
                continue
            rolled_up = _common_prefix(key, prefix, delimiter)
            found.append(entry if rolled_up is None else rolled_up)
        if len(batch) < wanted:
            break
        last = batch[-1].details
        if rolled_up is not None and last.key.startswith(rolled_up):
            # Seek past every version under the prefix instead of reading them.
            start, key_marker, version_marker = rolled_up[: -len(delimiter)] + beyond, "", None
        else:
            key_marker, version_marker = last.key, last.version_id or ""
    if len(found) > max_keys:
        listing.truncated = True
        del found[max_keys:]
    return listing
