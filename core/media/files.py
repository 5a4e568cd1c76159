"""Files on disk: opening only regular files, with bounded reads, their content hashes, and
whether a video's file still holds the content that was hashed (:func:`video_file_state`).

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
from typing import TYPE_CHECKING, BinaryIO, Literal

if TYPE_CHECKING:
    from db import Index, VideoRecord

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


FileState = Literal["ok", "changed", "replaced", "missing"]


def video_file_state(video: VideoRecord, index: Index | None = None) -> FileState:
    """Whether a video's file still holds the content its cached frames and runs were made from,
    judged as :func:`core.matching.pipeline.identify_video` judges it (path, size and modification time as when the file
    was hashed): ``ok``; ``changed``, it differs and was not hashed since, so what it holds now is
    unknown; ``replaced``, it holds other content, hashed since as another video (told apart from
    ``changed`` only with ``index``); ``missing``, no file is there."""
    try:
        stat = os.stat(video.path)
    except OSError:
        return "missing"
    if video.mtime_ns is None:  # hashed before modification times were kept: the size alone
        return "ok" if stat.st_size == video.size_bytes else "changed"
    if (stat.st_size, stat.st_mtime_ns) == (video.size_bytes, video.mtime_ns):
        return "ok"
    now = None if index is None else index.find_video_file(video.path, stat.st_size, stat.st_mtime_ns)
    return "replaced" if now is not None and now.sha256 != video.sha256 else "changed"


FILE_STATE_NOTES: dict[str, str] = {
    "changed": "the file has changed since these frames were cached: index it again to know what it holds",
    "replaced": "the file holds other content now: these times are of its earlier content",
    "missing": "the file is gone",
}
"""What a user is told of a video whose file is not as its cached frames were made from."""
