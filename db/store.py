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
from sqlite_utils import Database

from .errors import DatabaseError
from .migrations import migrate
from .migrations import schema_version as _schema_version
from .records import DbStats, file_name

DEFAULT_BUSY_TIMEOUT_MS = 5000
# Reading through a memory map makes loading a large embedding matrix about twice as fast.
MMAP_SIZE = 1 << 30

R = TypeVar("R")


class Store:
    """A connection to an index file (see :class:`db.Index` for the whole API).

    Args:
        path: the SQLite file; missing parent folders are created. ``":memory:"`` gives a
            throwaway in-memory index (no WAL).
        busy_timeout_ms: how long a write waits for another connection's write to finish.

    Raises:
        SchemaTooNewError: the file was written by a newer version of this program.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
    ) -> None:
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions, only the explicit ones below.
        conn = sqlite3.connect(
            self.path,
            timeout=busy_timeout_ms / 1000,
            check_same_thread=False,
            isolation_level=None,
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL cannot corrupt the file; a power cut (not a killed
            # process) may lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
            self.db = Database(conn)
            self.db.register_function(_file_name_casefold, deterministic=True)
            migrate(self.db)
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
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- reading ----------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.db.conn.execute(sql, params).fetchall()

    def _row(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self.db.conn.execute(sql, params).fetchone()

    def _columns(self, sql: str, params: Sequence[Any], width: int) -> list[tuple]:
        """The result as ``width`` columns (tuples), for the bulk loaders: no Row objects."""
        with self._lock:
            cursor = self.db.conn.cursor()
            cursor.row_factory = None
            rows = cursor.execute(sql, params).fetchall()
        return list(zip(*rows, strict=True)) if rows else [()] * width

    def schema_version(self) -> int:
        """The schema version of the file (``PRAGMA user_version``)."""
        with self._lock:
            return _schema_version(self.db)

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
                (SELECT count(*) FROM frame_embeddings) AS cached_frames
            """
        )
        assert row is not None
        return DbStats(path=self.path, **dict(row))


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


def _file_name_casefold(path: str) -> str:
    """SQL function: the file name of ``path``, for case-insensitive matching."""
    return file_name(path).casefold()
