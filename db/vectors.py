"""Sets of vectors for approximate search, and the records that keep their index files in step.

A *vector set* is what one approximate index holds: a collection's image embeddings
(``kind="images"``, ``scope`` = the collection id) or the cached frame embeddings of one
embedding key (``kind="frames"``, ``scope`` = the key). Each vector has a stable integer key:
the image id, or the cached frame's id.

SQLite stays the source of truth. An index file lives in the folder beside the database
(:attr:`VectorSets.vector_dir`), and ``vector_indexes`` records which file holds a set and the
last change it includes (``seq``). While a set has that record, triggers (see
:mod:`db.migrations`) log every added, changed or removed vector of it in ``vector_changes``,
in the same transaction as the change: an index file plus the log after its ``seq`` is always
the set as stored, whatever crashed when. Recording a new file and dropping the log it
includes happen in one transaction (:meth:`VectorSets.record_vector_file`); the file itself is
written and renamed into place before, so the record never names a file that is not complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import NotFoundError
from .records import FrameRefs, VectorChanges, VectorIndexRecord
from .store import Store, json_ids, now, record

KINDS = ("images", "frames")
_FILE_COLUMNS = "kind, scope, file, seq, count, dim, updated"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


def _members(kind: str) -> tuple[str, str]:
    """``(FROM ... WHERE, key column)`` of a set's vectors, filtered by scope (one parameter)."""
    if kind == "images":
        return (
            "image_embeddings WHERE image_id IN (SELECT id FROM images WHERE collection_id = CAST(? AS INTEGER))",
            "image_id",
        )
    return "frame_embeddings WHERE embed_key = ?", "id"


class VectorSets(Store):
    """Vector sets, their index records and change logs (part of :class:`db.Index`)."""

    @property
    def vector_dir(self) -> Path | None:
        """The folder beside the database for index files (None for an in-memory index)."""
        if self.path == ":memory:":
            return None
        return Path(self.path + ".vectors")

    # -- the record of a set's index file -------------------------------------------------------
    def vector_index(self, kind: str, scope: str) -> VectorIndexRecord | None:
        """The record of the set's index file, or None when the set has none."""
        _check_kind(kind)
        row = self._row(
            f"SELECT {_FILE_COLUMNS} FROM vector_indexes WHERE kind = ? AND scope = ?", (kind, str(scope))
        )
        return record(VectorIndexRecord, row) if row else None

    def track_vectors(self, kind: str, scope: str, dim: int) -> int:
        """Start logging the set's changes (if not already) and return the last change number.

        A build of a new index reads the set after this call and then applies the changes
        after the returned number: whatever was written meanwhile is in the log.
        """
        _check_kind(kind)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO vector_indexes (kind, scope, file, seq, count, dim, updated) "
                "VALUES (?, ?, NULL, 0, 0, ?, ?) ON CONFLICT (kind, scope) DO NOTHING",
                (kind, str(scope), int(dim), now()),
            )
            return self._last_change()

    def _last_change(self) -> int:
        row = self._row("SELECT seq FROM sqlite_sequence WHERE name = 'vector_changes'")
        return int(row["seq"]) if row else 0

    def record_vector_file(self, kind: str, scope: str, file: str, seq: int, count: int) -> str | None:
        """Record that ``file`` (in :attr:`vector_dir`) holds the set up to change ``seq``, and
        drop the log it includes; one transaction. Returns the file it replaces, if any.

        Raises:
            NotFoundError: the set is not tracked (its record was dropped meanwhile).
        """
        _check_kind(kind)
        with self.transaction() as conn:
            before = self.vector_index(kind, scope)
            if before is None:
                raise NotFoundError(f"No vector index record for {kind} {scope}")
            conn.execute(
                "UPDATE vector_indexes SET file = ?, seq = ?, count = ?, updated = ? WHERE kind = ? AND scope = ?",
                (file, int(seq), int(count), now(), kind, str(scope)),
            )
            conn.execute(
                "DELETE FROM vector_changes WHERE kind = ? AND scope = ? AND seq <= ?",
                (kind, str(scope), int(seq)),
            )
        return before.file if before.file != file else None

    def drop_vector_index(self, kind: str, scope: str) -> None:
        """Forget the set's index record and log, and delete its file (logging stops)."""
        _check_kind(kind)
        with self.transaction() as conn:
            before = self.vector_index(kind, scope)
            conn.execute("DELETE FROM vector_indexes WHERE kind = ? AND scope = ?", (kind, str(scope)))
            conn.execute("DELETE FROM vector_changes WHERE kind = ? AND scope = ?", (kind, str(scope)))
        if before is not None and before.file:
            self.remove_vector_file(before.file)

    def remove_vector_file(self, file: str) -> None:
        """Delete an index file of :attr:`vector_dir` that no record names (missing is fine)."""
        folder = self.vector_dir
        if folder is not None and file and os.path.basename(file) == file:
            with contextlib.suppress(FileNotFoundError):
                (folder / file).unlink()

    def vector_files_in_use(self) -> set[str]:
        """The file names that records name (the others in :attr:`vector_dir` are leftovers)."""
        return {row["file"] for row in self._rows("SELECT file FROM vector_indexes WHERE file IS NOT NULL")}

    def vector_changes(self, kind: str, scope: str, after: int) -> VectorChanges:
        """The set's logged changes after change number ``after``, in order."""
        _check_kind(kind)
        seq, ids, removed = self._columns(
            "SELECT seq, item_id, removed FROM vector_changes WHERE kind = ? AND scope = ? AND seq > ? "
            "ORDER BY seq",
            (kind, str(scope), int(after)),
            3,
        )
        return VectorChanges(
            seq=np.array(seq, np.int64), item_ids=np.array(ids, np.int64), removed=np.array(removed, bool)
        )

    # -- the set's vectors ----------------------------------------------------------------------
    def count_vectors(self, kind: str, scope: str) -> int:
        """How many vectors the set has now."""
        _check_kind(kind)
        # every image has its embedding (written in one transaction): counting images is cheaper
        source = "images WHERE collection_id = CAST(? AS INTEGER)" if kind == "images" else _members(kind)[0]
        row = self._row(f"SELECT count(*) AS n FROM {source}", (str(scope),))
        assert row is not None
        return int(row["n"])

    def iter_vectors(
        self, kind: str, scope: str, dim: int, *, chunk: int = 50_000
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The set's vectors as ``(keys int64 (n,), float32 (n, dim))`` chunks, by key.

        Each chunk is one query (keyset pagination), so a build of millions of vectors holds
        one chunk at a time and no read transaction stays open between chunks.
        """
        _check_kind(kind)
        source, key = _members(kind)
        last = -1
        while True:
            (keys,), vectors = self._vector_rows(
                f"SELECT {key}, dim, dtype, vector FROM {source} AND {key} > ? ORDER BY {key} LIMIT ?",
                (str(scope), last, int(chunk)),
                dim,
                0,
            )
            if not len(keys):
                return
            keys = keys.astype(np.int64, copy=False)
            yield keys, vectors
            last = int(keys[-1])

    def load_vectors(self, kind: str, scope: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """All of the set's vectors: ``(keys int64 (n,), float32 (n, dim))``, by key, read in
        chunks into one preallocated matrix (its peak memory is the matrix plus a few MB)."""
        _check_kind(kind)
        source, key = _members(kind)
        (keys,), vectors = self._vector_rows(
            # Walks the table in key order: a JOIN ordered by key would sort the blobs.
            f"SELECT {key}, dim, dtype, vector FROM {source} ORDER BY {key}",
            (str(scope),),
            dim,
            self.count_vectors(kind, scope),
        )
        return keys.astype(np.int64, copy=False).reshape(-1), vectors

    def vectors_by_key(
        self, kind: str, keys: Sequence[int] | np.ndarray, dim: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(keys found, float32 vectors)`` of those ``keys`` that still exist, in key order."""
        _check_kind(kind)
        key = "image_id" if kind == "images" else "id"
        table = "image_embeddings" if kind == "images" else "frame_embeddings"
        (found,), vectors = self._vector_rows(
            f"SELECT {key}, dim, dtype, vector FROM {table} WHERE {key} IN (SELECT value FROM json_each(?)) "
            f"ORDER BY {key}",
            (json_ids(keys),),
            dim,
            len(keys),
        )
        return found.astype(np.int64, copy=False).reshape(-1), vectors

    def frame_refs(self, frame_ids: Sequence[int] | np.ndarray) -> FrameRefs:
        """Where cached frames come from: video, frame index and time, in the order of ``frame_ids``
        (ids that no longer exist are left out)."""
        keys, ids, shas, frames, times = self._columns(
            "SELECT j.key, f.id, f.video_sha256, f.frame_index, f.time_s FROM json_each(?) j "
            "JOIN frame_embeddings f ON f.id = j.value ORDER BY j.key",
            (json_ids(frame_ids),),
            5,
        )
        return FrameRefs(
            frame_ids=np.array(ids, np.int64),
            video_sha256=tuple(shas),
            frame_index=np.array(frames, np.int64),
            time_s=np.array(times, np.float64),
        )
