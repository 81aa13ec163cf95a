"""Blob files: the bytes of objects and parts, under `<data_dir>/blobs/`, named by generated ids.

A blob is written to `blobs/incoming/<id>` while its hashes are computed, fsynced, and only
then renamed to `blobs/<id[:2]>/<id>`: a half-received upload never has a final name, and the
metadata that makes an object visible is committed only after the rename.

An id ends with the writer's tag (`TAG_LENGTH` characters of the server instance's token), so
that recovery removes a blob no metadata references only when the process that wrote it is
dead: a blob another live process has written but not yet committed looks just the same.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from oscarpy.storage.checksums import Checksum

COPY_CHUNK = 1024 * 1024
TAG_LENGTH = 8
#: Writes at least this big hash in parallel threads while the bytes go to disk: hashlib and
#: zlib release the GIL, so MD5, SHA-256 and a checksum of a big upload cost one pass, not three.
PARALLEL_HASHING_MIN = 256 * 1024
_hashing = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blob-hashing")
#: Every this many bytes, writeback of what came before starts (without waiting for it), so
#: that the fsync at the end of a big upload has little left to flush.
WRITEBACK_STEP = 16 * 1024 * 1024


PRIVATE_MODE = 0o600
"""Blobs are the server user's alone, whatever the process's umask."""


def private_opener(path: str, flags: int) -> int:
    """An `opener` for `open()` that creates files only the server's user may read."""
    return os.open(path, flags, PRIVATE_MODE)


class RunningHash(Protocol):
    def update(self, data: bytes, /) -> None: ...


@dataclass(frozen=True)
class WrittenBlob:
    """A blob fully written and fsynced under its final name, not yet referenced by metadata."""

    blob_id: str
    size: int
    md5: str
    sha256: str | None
    checksum: Checksum | None = None
    """The additional checksum the client declared, once verified."""


class BlobWriter:
    """Receives the bytes of one blob, hashing them on the way to a temporary file."""

    def __init__(self, blobs: Blobs, *, sha256: bool = False) -> None:
        self._blobs = blobs
        self.blob_id = blobs.new_id()
        self.temporary = blobs.incoming / self.blob_id
        self._file: BinaryIO = open(self.temporary, "xb", opener=private_opener)  # noqa: SIM115 - closed in finish/abort
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256() if sha256 else None
        self._hashes: list[RunningHash] = [self._md5]
        if self._sha256 is not None:
            self._hashes.append(self._sha256)
        self.size = 0
        self._written_back = 0

    def track(self, running: RunningHash) -> None:
        """Also feed every byte written to `running` (a checksum the client declared)."""
        self._hashes.append(running)

    def write(self, data: bytes) -> None:
        if len(data) >= PARALLEL_HASHING_MIN:
            pending = [_hashing.submit(running.update, data) for running in self._hashes]
            self._file.write(data)
            for future in pending:
                future.result()
        else:
            for running in self._hashes:
                running.update(data)
            self._file.write(data)
        self.size += len(data)
        if self.size - self._written_back >= WRITEBACK_STEP:
            self._start_writeback()

    def _start_writeback(self) -> None:
        # POSIX_FADV_DONTNEED starts asynchronous writeback of the dirty range on Linux; pages
        # still being written stay cached, so a read right after the upload is not slowed.
        self._file.flush()
        length = self.size - self._written_back
        os.posix_fadvise(self._file.fileno(), self._written_back, length, os.POSIX_FADV_DONTNEED)
        self._written_back = self.size

    def copy_from(self, source: BinaryIO) -> None:
        while chunk := source.read(COPY_CHUNK):
            self.write(chunk)

    def md5_digest(self) -> bytes:
        return self._md5.digest()

    @property
    def sha256_hex(self) -> str | None:
        return None if self._sha256 is None else self._sha256.hexdigest()

    def finish(self) -> WrittenBlob:
        """Flush, fsync and move the blob to its final name."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.rename(self.temporary, self._blobs.final_path(self.blob_id))
        except BaseException:
            self.abort()
            raise
        return WrittenBlob(self.blob_id, self.size, self._md5.hexdigest(), self.sha256_hex)

    def abort(self) -> None:
        """Drop what was received; nothing of it stays on disk."""
        self._file.close()
        self.temporary.unlink(missing_ok=True)


class Blobs:
    """The blob directory of one store."""

    def __init__(self, root: Path, writer: str | None = None) -> None:
        """`writer` is the server instance's token (random when not given)."""
        self.root = root
        self.tag = (writer or uuid.uuid4().hex)[:TAG_LENGTH]
        self.incoming = root / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        #: Shard directories known to exist (they are never removed), so that a small write
        #: does not pay a `mkdir` system call to learn it again.
        self._shards: set[str] = set()

    def new_id(self) -> str:
        return uuid.uuid4().hex[: 32 - TAG_LENGTH] + self.tag

    def path(self, blob_id: str) -> Path:
        # Ids are generated hex strings, so this never leaves the root whatever a key holds.
        return self.root / blob_id[:2] / blob_id

    def final_path(self, blob_id: str) -> Path:
        """Where a finished blob goes, its shard directory created if needed."""
        path = self.path(blob_id)
        if blob_id[:2] not in self._shards:
            path.parent.mkdir(exist_ok=True)
            self._shards.add(blob_id[:2])
        return path

    def writer(self, *, sha256: bool = False) -> BlobWriter:
        return BlobWriter(self, sha256=sha256)

    def write_whole(self, data: bytes) -> WrittenBlob:
        """A blob of bytes already in memory, written and fsynced in the fewest system calls
        (no buffered file object): the path of every small upload."""
        blob_id = self.new_id()
        temporary = self.incoming / blob_id
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            descriptor = os.open(temporary, flags, PRIVATE_MODE)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.rename(temporary, self.final_path(blob_id))
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return WrittenBlob(blob_id, len(data), md5, None)

    def remove(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)

    def clear_incoming(self, live_tags: Collection[str] = ()) -> int:
        """Remove half-received uploads left by crashed writers (all but those of `live_tags`
        and this writer's own); returns how many."""
        removed = 0
        for leftover in self.incoming.iterdir():
            if tag_of(leftover.name) in live_tags or tag_of(leftover.name) == self.tag:
                continue
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def concatenate(self, blob_ids: list[str]) -> BlobWriter:
        """A writer holding the given blobs one after the other (for completing multipart)."""
        writer = self.writer()
        try:
            for blob_id in blob_ids:
                with open(self.path(blob_id), "rb") as source:
                    writer.copy_from(source)
        except BaseException:
            writer.abort()
            raise
        return writer

    def all_ids(self) -> set[str]:
        found: set[str] = set()
        for shard in self.root.iterdir():
            if shard.is_dir() and shard != self.incoming and len(shard.name) == 2:
                found.update(entry.name for entry in shard.iterdir())
        return found


def tag_of(blob_id: str) -> str:
    """The tag of the writer of a blob (see `Blobs.tag`)."""
    return blob_id[-TAG_LENGTH:]


def copy_out(source: BinaryIO, destination: Path) -> None:
    """Copy an open blob to a new file outside the store; the kernel copies (`sendfile`), no
    bytes pass through Python. Copying from the handle, not the path, keeps a concurrent
    replacement of the object (which unlinks the old blob) from breaking the copy."""
    with open(destination, "xb") as target:
        offset = 0
        while True:
            sent = os.sendfile(target.fileno(), source.fileno(), offset, 1 << 30)
            if sent == 0:
                break
            offset += sent
