"""The connection to an index file: opening, pragmas, transactions and row helpers.

:class:`Store` is the base of :class:`db.Index`; the tables' methods live in one module per
kind of data (:mod:`db.collections`, :mod:`db.videos`, :mod:`db.runs`).

Rows come back as :class:`sqlite3.Row` and become records by column name (:func:`record`).
The bulk loaders of embedding BLOBs read plain tuples instead (:meth:`Store._columns`): one
query, one transpose, one copy into numpy, no per-row Python objects beyond the tuple.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np

from .errors import (
    DatabaseError,
    DatabaseFullError,
    DatabaseOpenError,
    NotAnIndexError,
    ReadOnlyDatabaseError,
    SchemaTooNewError,
)
from .migrations import migrate
from .migrations import schema_version as _schema_version
from .records import DbStats
from .sqlite import Database

DEFAULT_BUSY_TIMEOUT_MS = 5000
# Reading through a memory map makes loading a large embedding matrix about twice as fast.
MMAP_SIZE = 1 << 30
APPLICATION_ID = 0x57534C4E  # "WSLN" in the file header: this file is a webssl-lens index
# Tables every index has had since schema version 1: a file without the marker (written before
# it existed) that has them is ours.
_OUR_TABLES = frozenset({"collections", "images", "thumbnails", "image_embeddings", "index_failures"})

R = TypeVar("R")
_CHUNK_ROWS = 4096  # rows per fetch of the bulk vector reader


class Store:
    """A connection to an index file (see :class:`db.Index` for the whole API).

    Args:
        path: the SQLite file; missing parent folders are created. ``":memory:"`` gives a
            throwaway in-memory index (no WAL).
        busy_timeout_ms: how long a write waits for another connection's write to finish.
        readonly: open for reading only: nothing is ever written (no schema upgrade, no
            journal-mode switch), so read-only files and file systems work.

    Raises:
        DatabaseOpenError: the file is missing (read-only), a folder, or cannot be opened.
        NotAnIndexError: the file is not SQLite, or another application's database (it is
            never written to).
        ReadOnlyDatabaseError: a writable open of a file that can only be read.
        SchemaTooNewError: the file was written by a newer version of this program.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        readonly: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        conn = _connect(self.path, busy_timeout_ms, readonly)
        try:
            with translated(self.path):
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                new_file = _check_identity(conn, self.path, readonly)
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
                self.db = Database(conn)
                if readonly:
                    _check_readable_version(self.db, self.path)
                else:
                    conn.execute("PRAGMA journal_mode = WAL")
                    # In WAL mode NORMAL cannot corrupt the file; a power cut (not a killed
                    # process) may lose the last commits.
                    conn.execute("PRAGMA synchronous = NORMAL")
                    migrate(self.db)
                    if new_file or conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except BaseException:
            conn.close()
            raise

    def __repr__(self) -> str:
        return f"<Index {self.path!r}>"

    def close(self) -> None:
        """Close the connection. Calling it twice is harmless."""
        with self._lock:
            self.db.close()

    def __enter__(self):
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the block in one write transaction.

        Commits when the block ends, rolls back if it raises. Nested blocks become savepoints.
        ``BEGIN IMMEDIATE`` takes the write lock up front, so a transaction that reads and
        then writes cannot fail half-way because another connection wrote in between.
        """
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                with self.db.atomic():
                    yield conn
                return
            if self.readonly:
                raise ReadOnlyDatabaseError(
                    f"{self.path} was opened read-only (a command that only reads); nothing was changed."
                )
            with translated(self.path):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Hold the lock and run the block's reads in one read transaction: they all see the
        same state of the file (other connections' commits meanwhile are not seen)."""
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                yield
                return
            with translated(self.path):
                conn.execute("BEGIN")
                try:
                    yield
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")

    # -- reading ----------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, translated(self.path):
            return self.db.conn.execute(sql, params).fetchall()

    def _row(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock, translated(self.path):
            return self.db.conn.execute(sql, params).fetchone()

    def _columns(self, sql: str, params: Sequence[Any], width: int) -> list[tuple]:
        """The result as ``width`` columns (tuples), for the bulk loaders: no Row objects."""
        with self._lock, translated(self.path):
            cursor = self.db.conn.cursor()
            cursor.row_factory = None
            rows = cursor.execute(sql, params).fetchall()
        return list(zip(*rows, strict=True)) if rows else [()] * width

    def _vector_rows(
        self, sql: str, params: Sequence[Any], dim: int, expected: int, extra: int = 1
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Rows of ``(*extra columns, dim, dtype, vector)`` as arrays and an (N, dim) float32
        matrix, read in chunks into one preallocated matrix.

        The bulk path for large sets: at most one chunk of rows exists as Python objects at a
        time, so a million 4 KB vectors cost their matrix plus a few MB, not a second copy as
        bytes objects (9.5 GB and 40 s for 1M x 1024 before). ``expected`` sizes the matrix
        (the count of rows, read just before); it grows if more rows come.
        """
        matrix = np.empty((max(0, int(expected)), dim), np.float32)
        columns: list[list] = [[] for _ in range(extra)]
        n = 0
        with self._lock, translated(self.path):
            cursor = self.db.conn.cursor()
            cursor.row_factory = None
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(_CHUNK_ROWS):
                *values, dims, dtypes, blobs = zip(*rows, strict=True)
                if n + len(rows) > len(matrix):
                    matrix = np.resize(matrix, (max(2 * len(matrix), n + len(rows)), dim))
                matrix[n : n + len(rows)] = decode_vectors(dims, dtypes, blobs, dim)
                for column, value in zip(columns, values, strict=True):
                    column.extend(value)
                n += len(rows)
        return [np.asarray(column) for column in columns], matrix[:n]

    def schema_version(self) -> int:
        """The schema version of the file (``PRAGMA user_version``)."""
        with self._lock:
            return _schema_version(self.db)

    def integrity_ok(self) -> bool:
        """SQLite's full ``integrity_check`` passes: no damaged page, index or constraint."""
        row = self._row("PRAGMA integrity_check")
        return row is not None and tuple(row) == ("ok",)

    def stats(self) -> DbStats:
        """File size and row counts."""
        row = self._row(
            """
            SELECT
                (SELECT page_count FROM pragma_page_count())
                    * (SELECT page_size FROM pragma_page_size()) AS size_bytes,
                (SELECT count(*) FROM collections) AS collections,
                (SELECT count(*) FROM images) AS images,
                (SELECT count(*) FROM videos) AS videos,
                (SELECT count(*) FROM runs) AS runs,
                (SELECT coalesce(sum(frames), 0) FROM frame_counts) AS cached_frames
            """
        )
        assert row is not None
        return DbStats(path=self.path, **dict(row))


# -- opening -------------------------------------------------------------------------------------
def _connect(path: str, busy_timeout_ms: int, readonly: bool) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions, only the explicit ones of Store.transaction.
    options = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False, "isolation_level": None}
    if path == ":memory:":
        return sqlite3.connect(path, **options)
    file = Path(path)
    if file.is_dir():
        raise DatabaseOpenError(
            f"{path} is a folder, not an index file: give a file name (e.g. {file / 'index.sqlite'})."
        )
    if readonly and not file.exists():
        raise DatabaseOpenError(
            f"No index database at {path}: index some images first (python -m core index PATH "
            "--collection NAME), or point --db / WEBSSL_DB at an existing file."
        )
    try:
        if readonly:
            return sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, **options)
        file.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, **options)
    except OSError as err:
        raise DatabaseOpenError(f"Cannot create the folder of {path}: {err.strerror or err}.") from err
    except sqlite3.Error as err:
        raise translate(err, path) from err


def _check_identity(conn: sqlite3.Connection, path: str, readonly: bool) -> bool:
    """Refuse files that are not ours; returns True for a new, empty file."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as err:
        raise NotAnIndexError(
            f"{path} is not an SQLite database ({err}). Point --db / WEBSSL_DB at an index file, or at a "
            "new file name to start one; this file was not changed."
        ) from err
    if app_id == APPLICATION_ID and version >= 0:
        return False
    if app_id == 0 and version == 0 and not tables:
        if readonly:
            raise DatabaseOpenError(f"{path} holds no index yet: index some images into it first.")
        return True
    if app_id == 0 and version > 0 and _OUR_TABLES <= tables:
        return False  # written before the marker existed
    listed = ", ".join(sorted(tables)[:6]) or "none"
    raise NotAnIndexError(
        f"{path} is not a webssl-lens index (application id {app_id}, schema version {version}, "
        f"tables: {listed}). webssl-lens never writes to a database it did not create: point --db / "
        "WEBSSL_DB at another file."
    )


def _check_readable_version(db: Database, path: str) -> None:
    from .migrations import SCHEMA_VERSION

    version = _schema_version(db)
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{path} has schema version {version}, but this version of webssl-lens only knows up to "
            f"{SCHEMA_VERSION}: upgrade webssl-lens, or use another index file."
        )
    if version < SCHEMA_VERSION:
        raise ReadOnlyDatabaseError(
            f"{path} was written by an older webssl-lens (schema {version} of {SCHEMA_VERSION}) and needs "
            "an upgrade, which a read-only command does not do: run a command that writes (e.g. index) "
            "once, on a writable copy if this one is read-only."
        )


def translate(err: sqlite3.Error, path: str) -> DatabaseError:
    """A user-facing error for an SQLite failure (the file, not the program, is at fault)."""
    text = str(err)
    lower = text.lower()
    if "full" in lower:
        return DatabaseFullError(
            f"The disk holding {path} is full ({text}): free some space, then run the same command "
            "again; everything finished before is kept."
        )
    if "readonly" in lower or "read-only" in lower:
        return ReadOnlyDatabaseError(
            f"Cannot write to {path}: the file, its folder or its file system is read-only ({text}). "
            "Commands that only read (collections, runs, export, search) still work on it; to change "
            "it, copy it somewhere writable or point --db / WEBSSL_DB elsewhere."
        )
    if "not a database" in lower or "malformed" in lower or "corrupt" in lower:
        return NotAnIndexError(f"{path} is damaged or not an SQLite database ({text}); it was not changed.")
    if "unable to open" in lower or "disk i/o" in lower:
        return DatabaseOpenError(
            f"Cannot open {path} ({text}): check that the file and its folder exist and are readable."
        )
    if "locked" in lower or "busy" in lower:
        return DatabaseError(
            f"{path} stayed locked by another program ({text}); try again when it has finished."
        )
    return DatabaseError(f"SQLite error on {path}: {text}")


@contextmanager
def translated(path: str) -> Iterator[None]:
    """Turn operational SQLite failures (disk full, read-only, locked, damaged) into
    :class:`DatabaseError` subclasses; programming errors (bad SQL, constraints) stay bugs."""
    try:
        yield
    except sqlite3.OperationalError as err:
        raise translate(err, path) from err
    except sqlite3.DatabaseError as err:
        if type(err) is sqlite3.DatabaseError:  # "file is not a database", "database disk image is malformed"
            raise translate(err, path) from err
        raise


# -- helpers shared by the table modules ---------------------------------------------------------
def record(cls: type[R], row: sqlite3.Row | dict, **decoded: Any) -> R:
    """A record dataclass from a row, field by field by column name (``decoded`` overrides)."""
    return cls(**{f.name: decoded[f.name] if f.name in decoded else row[f.name] for f in fields(cls)})


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fspath(path: str | os.PathLike[str]) -> str:
    """A path as a string (records may carry ``pathlib.Path`` objects)."""
    return os.fspath(path) if isinstance(path, os.PathLike) else path


def json_ids(ids: Sequence[int] | np.ndarray) -> str:
    """Ids as a JSON array, for ``IN (SELECT value FROM json_each(?))``."""
    return json.dumps(np.asarray(ids, dtype=np.int64).reshape(-1).tolist())


def decode_vectors(
    dims: Sequence[int], dtypes: Sequence[str], blobs: Sequence[bytes], dim: int
) -> np.ndarray:
    """Stack float32 BLOBs of ``dim`` values into an (N, dim) array, with one copy.

    The blobs are joined in C into one ``bytearray`` that the array then shares (so it is
    writable); no Python loop over the rows.
    """
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    nbytes = dim * 4
    if set(dims) != {dim} or set(dtypes) != {"float32"} or set(map(len, blobs)) != {nbytes}:
        raise DatabaseError(
            f"Stored vectors are not all float32 of dimension {dim} "
            f"(dims {sorted(set(dims))}, dtypes {sorted(set(dtypes))})"
        )
    joined = bytearray().join(blobs)
    return np.frombuffer(joined, dtype="<f4").reshape(len(blobs), dim).astype(np.float32, copy=False)


def plain(value: Any) -> Any:
    """A numpy scalar as the matching Python scalar, for sqlite3."""
    return value.item() if isinstance(value, np.generic) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def to_json(value: dict) -> str:
    return json.dumps(value, default=_json_default)
