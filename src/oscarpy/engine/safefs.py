"""File operations that never follow a link, for directories a container can write into.

The server may run as root while a script in a container controls what its work directory
holds: a link planted there must never make the server write or read a host file. So every
name is resolved one component at a time from a directory descriptor with `O_NOFOLLOW`, files
are created with `O_EXCL` and their modes set on descriptors, and outputs are taken by copying
regular files into a directory the container cannot reach (`copy_tree`), once nothing of the
script runs any more.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_COPY_CHUNK = 1024 * 1024
MAX_DEPTH = 64
"""Deeper output directories are skipped (each level holds a descriptor while it is copied)."""

Note = Callable[[str], None]


def open_dir(path: Path | str, *, dir_fd: int | None = None) -> int:
    """A descriptor of the directory `path` (a single name with `dir_fd`); `ELOOP`/`ENOTDIR`
    (an `OSError`) if it is a link or not a directory."""
    return os.open(path, DIR_FLAGS, dir_fd=dir_fd)


def open_beneath(root: Path, relative: str) -> int:
    """A descriptor of the directory `root/relative`, no component of `relative` a link."""
    fd = open_dir(root)
    try:
        for part in PurePosixPath(relative).parts:
            if part in ("/", ".", ".."):
                raise OSError(errno.EINVAL, f"not a plain relative path: {relative}")
            child = open_dir(part, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_dir_at(dir_fd: int, name: str, mode: int) -> int:
    """Create the directory `name` in `dir_fd` (it must not exist) with `mode`; returns its
    descriptor."""
    os.mkdir(name, 0o700, dir_fd=dir_fd)
    fd = open_dir(name, dir_fd=dir_fd)
    os.fchmod(fd, mode)
    return fd


def set_mode_at(dir_fd: int, name: str, mode: int) -> None:
    """`chmod` of the file `name` in `dir_fd`, never through a link."""
    fd = os.open(name, _READ_FILE, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def set_mode(path: Path, mode: int) -> None:
    """`chmod` of `path` (whose directory is the server's own), never through a link."""
    fd = open_dir(path.parent)
    try:
        set_mode_at(fd, path.name, mode)
    finally:
        os.close(fd)


def write_new_at(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Create the file `name` in `dir_fd` (it must not exist) holding `data`, with `mode`."""
    fd = os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def copy_new_at(dir_fd: int, name: str, source: Path | int, mode: int) -> None:
    """Create the file `name` in `dir_fd` (it must not exist) as a copy of `source` (a path
    of the server's own, or an open descriptor), with `mode`."""
    reader = source if isinstance(source, int) else os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=dir_fd)
        try:
            _copy(reader, fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
    finally:
        if not isinstance(source, int):
            os.close(reader)


def put_file_at(dir_fd: int, name: str, source: Path, mode: int, *, link: bool) -> None:
    """Create `name` in `dir_fd` as a copy of the server's own file `source` with `mode`, or
    with `link` as a hard link to it where the filesystem allows (no copy of a large body)."""
    if link:
        try:
            os.link(source, name, dst_dir_fd=dir_fd, follow_symlinks=False)
            set_mode_at(dir_fd, name, mode)
            return
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    copy_new_at(dir_fd, name, source, mode)


def _copy(reader: int, writer: int) -> None:
    while True:
        try:
            sent = os.sendfile(writer, reader, None, _COPY_CHUNK)
        except OSError as error:
            if error.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            chunk = os.read(reader, _COPY_CHUNK)
            if not chunk:
                return
            os.write(writer, chunk)
            continue
        if sent == 0:
            return


def copy_tree(source_fd: int, destination: Path, note: Note) -> list[str]:
    """Copy the regular files under the directory `source_fd` into `destination` (created here,
    in a place the container cannot reach); returns their relative paths, sorted.

    Links are never followed, at any depth; links, devices, pipes and sockets are skipped and
    noted. Files are hard-linked where possible (nothing of the script runs any more, so the
    content cannot change; the link is out of the container's reach), copied otherwise."""
    destination.mkdir(mode=0o700)
    target = open_dir(destination)
    try:
        found: list[str] = []
        _copy_level(source_fd, target, PurePosixPath(), found, note, 0)
    finally:
        os.close(target)
    return sorted(found)


def _copy_level(
    source: int, target: int, prefix: PurePosixPath, found: list[str], note: Note, depth: int
) -> None:
    with os.scandir(source) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        relative = prefix / name
        try:
            info = os.stat(name, dir_fd=source, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode):
            if depth + 1 >= MAX_DEPTH:
                note(f"skipped {relative}/: deeper than {MAX_DEPTH} levels")
                continue
            try:
                child = open_dir(name, dir_fd=source)
            except OSError:
                note(f"skipped {relative}/: not a plain directory")
                continue
            try:
                made = make_dir_at(target, name, 0o700)
                try:
                    _copy_level(child, made, relative, found, note, depth + 1)
                finally:
                    os.close(made)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            if _take_file(source, target, name):
                found.append(relative.as_posix())
            else:
                note(f"skipped {relative}: not a regular file")
        elif stat.S_ISLNK(info.st_mode):
            note(f"skipped symbolic link {relative}")
        else:
            note(f"skipped {relative}: not a regular file")


def _take_file(source: int, target: int, name: str) -> bool:
    try:
        fd = os.open(name, _READ_FILE, dir_fd=source)
    except OSError:
        return False  # replaced by a link (ELOOP) or removed meanwhile
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=target, follow_symlinks=True)
            return True
        except OSError:
            pass  # another filesystem, no /proc, or hard links protected: copy instead
        os.set_blocking(fd, True)
        copy_new_at(target, name, fd, 0o600)
        return True
    finally:
        os.close(fd)
