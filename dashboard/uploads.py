"""Storing uploaded files under the data folder: sanitised names, content-hashed, never overwritten.

An upload called ``../../etc/passwd`` or ``C:\\x\\holiday photo.JPG`` becomes
``<data dir>/uploads/<kind>/<sha256[:16]>/passwd`` or ``…/<sha256[:16]>/holiday_photo.JPG``:
only the last path component survives, unusual characters become ``_``, and the file always
lands inside the uploads folder. The folder named by the content hash keeps the file's own
name readable (it is what Browse, the segments table and exports show). The same content
uploaded twice under the same name maps to the same file (kept, not rewritten); different
content never shares a folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import BinaryIO

from core import config
from core.media.files import file_sha256

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 120
_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_KINDS = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def uploads_dir(kind: str = "files") -> Path:
    """``<data dir>/uploads/<kind>`` (created)."""
    if not _KINDS.fullmatch(kind):
        raise ValueError(f"upload kind must be a short lowercase word, got {kind!r}")
    folder = config.data_dir() / "uploads" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sanitize_filename(name: str, default: str = "upload") -> str:
    """A safe file name from a user-given one: last component only, ``[A-Za-z0-9._-]``, no leading dot.

    >>> sanitize_filename("../../etc/passwd")
    'passwd'
    >>> sanitize_filename("C:\\\\Users\\\\me\\\\holiday photo.JPG")
    'holiday_photo.JPG'
    """
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE.sub("_", base).strip("._-")
    if not base:
        return default
    if len(base) > MAX_NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            base = stem[: MAX_NAME_CHARS - len(ext) - 1].rstrip("._-") + "." + ext
        else:
            base = base[:MAX_NAME_CHARS]
    return base


def save_upload(data: bytes | bytearray | memoryview | BinaryIO, name: str, *, kind: str = "files") -> Path:
    """Store an upload and return its path.

    Args:
        data: the file's bytes, or a binary file object (read in chunks from its start).
        name: the name the user's browser gave; only a sanitised version of it is used.
        kind: the sub-folder of ``<data dir>/uploads`` (``images``, ``videos``, ...).

    Returns:
        ``<data dir>/uploads/<kind>/<sha256[:16]>/<sanitised name>``. When that file already
        holds the same content it is returned untouched; a file is never overwritten.

    Raises:
        OSError: the file cannot be written (disk full, permissions).
    """
    folder = uploads_dir(kind).resolve()
    safe = sanitize_filename(name)
    fd, tmp_name = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in _chunks(data):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        sha = digest.hexdigest()
        for sub in (sha[:16], sha):  # the full hash only if a 64-bit prefix ever collides
            target_dir = folder / sub
            target = target_dir / safe
            if target.resolve().parent.parent != folder:  # impossible with a sanitised name; be sure
                raise ValueError(f"refusing to store an upload outside {folder}: {name!r}")
            target_dir.mkdir(exist_ok=True)
            if _link_exclusive(tmp, target):
                logger.info("stored upload %s (%d bytes)", target, size)
                return target
            if target.is_file() and target.stat().st_size == size and file_sha256(target) == sha:
                return target  # the same content was uploaded before
        raise FileExistsError(f"cannot store upload {name!r}: {folder} holds other files with its name")
    finally:
        tmp.unlink(missing_ok=True)


def _chunks(data: bytes | bytearray | memoryview | BinaryIO):
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            yield view[start : start + _CHUNK]
        return
    if hasattr(data, "seek"):
        data.seek(0)
    while chunk := data.read(_CHUNK):
        yield chunk


def _link_exclusive(src: Path, target: Path) -> bool:
    """Give ``src``'s content the name ``target`` unless that name exists; True on success."""
    try:
        os.link(src, target)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: copy with an exclusive create
        try:
            fout = target.open("xb")
        except FileExistsError:
            return False
        try:
            with src.open("rb") as fin, fout:
                while chunk := fin.read(_CHUNK):
                    fout.write(chunk)
        except OSError:
            target.unlink(missing_ok=True)
            raise
        return True
