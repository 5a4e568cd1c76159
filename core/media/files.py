"""Files on disk: opening only regular files, with bounded reads, and their content hashes.

Devices (``/dev/zero``), FIFOs and sockets are refused before a single byte is read: reading
them would never end, or block forever. The check runs on the opened descriptor (the open
itself never blocks), so a path that changes under us cannot slip through.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from typing import BinaryIO

MAX_FILE_BYTES = 2 << 30
"""Files larger than this (2 GiB) are not read into memory: no image format needs more."""

_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


class NotARegularFileError(OSError):
    """The path is a device, FIFO, socket or folder, not a file that can be read to its end."""


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for reading.

    Raises:
        NotARegularFileError: a device, FIFO, socket or folder (``strerror`` says which).
        OSError: missing, permission denied, ...
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise NotARegularFileError(errno.EINVAL, f"not a regular file ({kind})", os.fspath(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (default :data:`MAX_FILE_BYTES`).

    Raises:
        NotARegularFileError, OSError; ``EFBIG`` when the file is larger than ``max_bytes``.
    """
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(max_bytes + 1) if size <= max_bytes else b""
        if size > max_bytes or len(data) > max_bytes:
            raise OSError(
                errno.EFBIG,
                f"file too large ({max(size, len(data)):,} bytes; the limit is {max_bytes:,})",
                os.fspath(path),
            )
        return data


HASH_CHUNK = 8 << 20  # bytes read at a time when hashing with progress


def file_sha256(path: str | os.PathLike[str], on_progress: Callable[[int, int], None] | None = None) -> str:
    """Hex SHA-256 of a regular file's bytes, read in chunks (never the whole file at once).

    Args:
        on_progress: called as ``(bytes read, file size)`` after each 8 MiB (a long video takes
            seconds to hash).

    Raises:
        NotARegularFileError, OSError: the file cannot be read.
    """
    with open_regular(path) as fh:
        if on_progress is None:
            return hashlib.file_digest(fh, "sha256").hexdigest()
        size, done, digest = os.fstat(fh.fileno()).st_size, 0, hashlib.sha256()
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        while n := fh.readinto(buffer):
            digest.update(view[:n])
            done += n
            on_progress(done, size)
        return digest.hexdigest()
