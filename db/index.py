"""The index: one SQLite file holding collections, videos, cached frame embeddings and runs.

Open it with ``Index(path)``; the schema is created or upgraded on open (see
:mod:`db.migrations`). The file is a plain SQLite database that Datasette or the ``sqlite3``
shell can open while the program runs (it uses WAL mode).

Every write of several rows happens in one transaction, so a crash or a killed process loses
at most the batch that was being written, never half of it. Bulk reads (a collection's
embedding matrix, cached frame embeddings, run results) are one query each, turned into numpy
arrays with a single copy.

Threads: an ``Index`` may be shared between threads (Streamlit reruns a script in different
threads); its connection is opened with ``check_same_thread=False`` and every method holds a
lock. Opening one ``Index`` per thread or per process on the same file is fine too: WAL lets
readers run beside one writer, and writers wait up to ``busy_timeout_ms`` for each other.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from sqlite_utils import Database

from .errors import CollectionExistsError, DatabaseError, ModelMismatchError, NotFoundError
from .migrations import migrate
from .migrations import schema_version as _schema_version
from .records import (
    Collection,
    DbStats,
    EmbeddingMatrix,
    FrameResults,
    ImageRecord,
    IndexFailure,
    NewImage,
    RunRecord,
    SegmentRecord,
    VideoRecord,
    file_name,
)

DEFAULT_BUSY_TIMEOUT_MS = 5000
# Reading through a memory map makes loading a large embedding matrix about twice as fast.
MMAP_SIZE = 1 << 30
RUN_STATUSES = ("running", "done", "failed", "cancelled")

_COLLECTION_SELECT = """
SELECT c.id, c.name, c.model_id, c.preprocessing, c.embed_dim, c.created,
    (SELECT count(*) FROM images i WHERE i.collection_id = c.id),
    (SELECT count(*) FROM index_failures f WHERE f.collection_id = c.id)
FROM collections c
"""
_IMAGE_COLUMNS = "id, collection_id, path, sha256, width, height, added"
_VIDEO_COLUMNS = "id, path, sha256, fps, frame_count, duration_s, width, height, rotation, size_bytes, added"
_RUN_SELECT = """
SELECT r.id, r.video_id, r.collection_id, c.name, r.model_id, r.params, r.status, r.stats,
    r.created, r.finished, v.path
FROM runs r
JOIN videos v ON v.id = r.video_id
LEFT JOIN collections c ON c.id = r.collection_id
"""
_SEGMENT_FIELDS = (
    "image_id",
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "peak_score",
    "mean_score",
    "frames",
)


class Index:
    """A connection to an index file.

    Args:
        path: the SQLite file; missing parent folders are created. ``":memory:"`` gives a
            throwaway in-memory index (no WAL).
        busy_timeout_ms: how long a write waits for another connection's write to finish.

    Raises:
        SchemaTooNewError: the file was written by a newer version of this program.

    One ``Index`` can be shared by threads (every method holds its lock), or each thread
    or process can open its own on the same file: WAL lets reads run beside a write.
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

    def __enter__(self) -> Index:
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

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        with self._lock:
            return self.db.execute(sql, params).fetchone()

    def schema_version(self) -> int:
        """The schema version of the file (``PRAGMA user_version``)."""
        with self._lock:
            return _schema_version(self.db)

    def stats(self) -> DbStats:
        """File size and row counts."""
        row = self._one(
            """
            SELECT
                (SELECT page_count FROM pragma_page_count())
                    * (SELECT page_size FROM pragma_page_size()),
                (SELECT count(*) FROM collections),
                (SELECT count(*) FROM images),
                (SELECT count(*) FROM videos),
                (SELECT count(*) FROM runs),
                (SELECT count(*) FROM frame_embeddings)
            """
        )
        assert row is not None
        return DbStats(self.path, *row)

    # Collections

    def create_collection(self, name: str, model_id: str, preprocessing: str, embed_dim: int) -> Collection:
        """Create an empty collection bound to one model.

        Args:
            name: unique name; leading and trailing spaces are dropped.
            model_id: the model every image of the collection is embedded with.
            preprocessing: the model's preprocessing settings, as a JSON string.
            embed_dim: the length of the model's embeddings.

        Raises:
            ValueError: empty name or model id, preprocessing that is not JSON, embed_dim < 1.
            CollectionExistsError: the name is taken.
        """
        name = _check_name(name)
        _check_model(model_id, preprocessing, embed_dim)
        with self.transaction() as conn:
            if self._collection_or_none(name) is not None:
                raise CollectionExistsError(
                    f"A collection named {name!r} already exists. Pick another name, "
                    "or add the images to the existing collection."
                )
            cursor = conn.execute(
                "INSERT INTO collections (name, model_id, preprocessing, embed_dim, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, model_id, preprocessing, int(embed_dim), _now()),
            )
            assert cursor.lastrowid is not None
            return self.get_collection_by_id(cursor.lastrowid)

    def _collection_or_none(self, name: str) -> Collection | None:
        row = self._one(_COLLECTION_SELECT + "WHERE c.name = ?", (name,))
        return Collection(*row) if row else None

    def get_collection(self, name: str) -> Collection:
        """The collection called ``name``.

        Raises:
            NotFoundError: no such collection; the message lists the existing ones.
        """
        collection = self._collection_or_none(name)
        if collection is None:
            names = [row[0] for row in self._all("SELECT name FROM collections ORDER BY name")]
            existing = f"Existing: {', '.join(names)}" if names else "There are no collections yet."
            raise NotFoundError(f"No collection named {name!r}. {existing}")
        return collection

    def get_collection_by_id(self, collection_id: int) -> Collection:
        """The collection with that id. Raises NotFoundError."""
        row = self._one(_COLLECTION_SELECT + "WHERE c.id = ?", (int(collection_id),))
        if row is None:
            raise NotFoundError(f"No collection with id {collection_id}")
        return Collection(*row)

    def get_or_create_collection(
        self, name: str, model_id: str, preprocessing: str, embed_dim: int
    ) -> Collection:
        """The collection called ``name``, created if it does not exist.

        Raises:
            ModelMismatchError: it exists but was indexed with another model, preprocessing
                or embedding size.
        """
        name = _check_name(name)
        _check_model(model_id, preprocessing, embed_dim)
        existing = self._collection_or_none(name)
        if existing is None:
            try:
                return self.create_collection(name, model_id, preprocessing, embed_dim)
            except CollectionExistsError:  # created by another connection just now
                existing = self.get_collection(name)
        differences = []
        if existing.model_id != model_id:
            differences.append(f"model {existing.model_id!r}, not {model_id!r}")
        if json.loads(existing.preprocessing) != json.loads(preprocessing):
            differences.append(f"preprocessing {existing.preprocessing}, not {preprocessing}")
        if existing.embed_dim != int(embed_dim):
            differences.append(f"embedding size {existing.embed_dim}, not {embed_dim}")
        if differences:
            raise ModelMismatchError(
                f"Collection {name!r} was indexed with {'; '.join(differences)}. "
                f"Use model {existing.model_id!r} (with its preprocessing) for this "
                f"collection, or create a new collection for model {model_id!r}."
            )
        return existing

    def list_collections(self) -> list[Collection]:
        """All collections, with their image and failure counts, ordered by name."""
        return [Collection(*row) for row in self._all(_COLLECTION_SELECT + "ORDER BY c.name")]

    def rename_collection(self, old: str, new: str) -> Collection:
        """Rename a collection. Raises NotFoundError, CollectionExistsError or ValueError."""
        new = _check_name(new)
        with self.transaction() as conn:
            collection = self.get_collection(old)
            if new != collection.name and self._collection_or_none(new) is not None:
                raise CollectionExistsError(
                    f"Cannot rename {old!r} to {new!r}: a collection named {new!r} already exists."
                )
            conn.execute("UPDATE collections SET name = ? WHERE id = ?", (new, collection.id))
            return self.get_collection_by_id(collection.id)

    def delete_collection(self, name: str) -> None:
        """Delete a collection with its images, embeddings, failures, runs and their results."""
        with self.transaction() as conn:
            collection = self.get_collection(name)
            conn.execute("DELETE FROM collections WHERE id = ?", (collection.id,))

    # Images

    def known_hashes(self, collection_id: int) -> dict[str, int]:
        """``sha256 -> image id`` for every image of the collection."""
        rows = self._all("SELECT sha256, id FROM images WHERE collection_id = ?", (int(collection_id),))
        return dict(rows)

    def known_paths(self, collection_id: int) -> dict[str, str]:
        """``path -> sha256`` for every image of the collection."""
        rows = self._all("SELECT path, sha256 FROM images WHERE collection_id = ?", (int(collection_id),))
        return dict(rows)

    def add_images(self, collection_id: int, items: Sequence[NewImage]) -> list[int]:
        """Add a batch of images with their thumbnails and embeddings, in one transaction.

        An item whose content (sha256) is already in the collection is skipped. Failures
        recorded earlier for the items' paths are cleared. Embeddings are stored L2-normalised.

        Returns:
            The image id of each item, in order (the existing id for a skipped item).

        Raises:
            NotFoundError: no such collection.
            ValueError: an embedding does not have the collection's ``embed_dim`` values, or
                holds NaN or infinity. Nothing of the batch is stored.
        """
        items = list(items)
        with self.transaction() as conn:
            collection = self.get_collection_by_id(collection_id)
            vectors = _normalised_embeddings(items, collection)
            existing = dict(
                conn.execute(
                    "SELECT sha256, id FROM images WHERE collection_id = ? "
                    "AND sha256 IN (SELECT value FROM json_each(?))",
                    (collection.id, json.dumps([item.sha256 for item in items])),
                ).fetchall()
            )
            added = _now()
            image_ids = []
            for item, vector in zip(items, vectors, strict=True):
                image_id = existing.get(item.sha256)
                if image_id is None:
                    cursor = conn.execute(
                        "INSERT INTO images (collection_id, path, sha256, width, height, added) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (collection.id, _fspath(item.path), item.sha256, item.width, item.height, added),
                    )
                    image_id = cursor.lastrowid
                    if item.thumbnail:
                        conn.execute(
                            "INSERT INTO thumbnails (image_id, jpeg) VALUES (?, ?)",
                            (image_id, item.thumbnail),
                        )
                    conn.execute(
                        "INSERT INTO image_embeddings (image_id, model_id, dim, dtype, vector) "
                        "VALUES (?, ?, ?, 'float32', ?)",
                        (image_id, collection.model_id, collection.embed_dim, vector.tobytes()),
                    )
                    existing[item.sha256] = image_id
                image_ids.append(image_id)
            conn.execute(
                "DELETE FROM index_failures WHERE collection_id = ? "
                "AND path IN (SELECT value FROM json_each(?))",
                (collection.id, json.dumps([_fspath(item.path) for item in items])),
            )
            return image_ids

    def update_image_path(self, image_id: int, path: str) -> None:
        """Record that an image's file (same content) now lives at ``path``."""
        with self.transaction() as conn:
            cursor = conn.execute("UPDATE images SET path = ? WHERE id = ?", (_fspath(path), int(image_id)))
            if cursor.rowcount == 0:
                raise NotFoundError(f"No image with id {image_id}")

    def add_failures(self, collection_id: int, failures: Sequence[tuple[str, str]]) -> None:
        """Record files that could not be indexed, as ``(path, reason)``; replaces older ones."""
        created = _now()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO index_failures (collection_id, path, reason, created) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (collection_id, path) "
                "DO UPDATE SET reason = excluded.reason, created = excluded.created",
                [(int(collection_id), _fspath(path), reason, created) for path, reason in failures],
            )

    def list_failures(self, collection_id: int) -> list[IndexFailure]:
        """The files of the collection that failed to index, ordered by path."""
        rows = self._all(
            "SELECT collection_id, path, reason, created FROM index_failures "
            "WHERE collection_id = ? ORDER BY path",
            (int(collection_id),),
        )
        return [IndexFailure(*row) for row in rows]

    def count_images(self, collection_id: int, name_filter: str | None = None) -> int:
        """How many images the collection has (whose file name contains ``name_filter``)."""
        where, params = _image_filter(collection_id, name_filter)
        row = self._one(f"SELECT count(*) FROM images WHERE {where}", params)
        assert row is not None
        return int(row[0])

    def list_images(
        self,
        collection_id: int,
        *,
        offset: int = 0,
        limit: int = 100,
        name_filter: str | None = None,
    ) -> list[ImageRecord]:
        """A page of the collection's images, ordered by path.

        Args:
            name_filter: keep images whose file name contains this, ignoring case.
        """
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, not {offset} and {limit}")
        where, params = _image_filter(collection_id, name_filter)
        rows = self._all(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE {where} ORDER BY path, id LIMIT ? OFFSET ?",
            [*params, int(limit), int(offset)],
        )
        return [ImageRecord(*row) for row in rows]

    def get_image(self, image_id: int) -> ImageRecord:
        """One image. Raises NotFoundError."""
        row = self._one(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (int(image_id),))
        if row is None:
            raise NotFoundError(f"No image with id {image_id}")
        return ImageRecord(*row)

    def get_images(self, image_ids: Sequence[int] | np.ndarray) -> dict[int, ImageRecord]:
        """``id -> ImageRecord`` for those of ``image_ids`` that exist, in one query."""
        rows = self._all(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id IN (SELECT value FROM json_each(?))",
            (_json_ids(image_ids),),
        )
        return {row[0]: ImageRecord(*row) for row in rows}

    def get_thumbnail(self, image_id: int) -> bytes:
        """The image's thumbnail (JPEG bytes). Raises NotFoundError."""
        row = self._one("SELECT jpeg FROM thumbnails WHERE image_id = ?", (int(image_id),))
        if row is None:
            raise NotFoundError(f"No thumbnail for image id {image_id}")
        return row[0]

    def get_thumbnails(self, image_ids: Sequence[int] | np.ndarray) -> dict[int, bytes]:
        """``id -> JPEG bytes`` for those of ``image_ids`` that have a thumbnail, in one query."""
        rows = self._all(
            "SELECT image_id, jpeg FROM thumbnails WHERE image_id IN (SELECT value FROM json_each(?))",
            (_json_ids(image_ids),),
        )
        return dict(rows)

    def remove_images(self, collection_id: int, image_ids: Sequence[int] | np.ndarray) -> int:
        """Remove images (and their embeddings, matches, segments); returns how many."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM images WHERE collection_id = ? AND id IN (SELECT value FROM json_each(?))",
                (int(collection_id), _json_ids(image_ids)),
            )
            return cursor.rowcount

    def prune_missing(self, collection_id: int, exists: Callable[[str], bool] = os.path.exists) -> list[str]:
        """Remove the images whose file no longer exists; returns their paths."""
        rows = self._all(
            "SELECT id, path FROM images WHERE collection_id = ? ORDER BY path",
            (int(collection_id),),
        )
        # Checking the files happens outside the lock: it can take a while on a slow disk.
        missing = [(image_id, path) for image_id, path in rows if not exists(path)]
        self.remove_images(collection_id, [image_id for image_id, _ in missing])
        return [path for _, path in missing]

    def load_embeddings(self, collection_id: int) -> EmbeddingMatrix:
        """The collection's embedding matrix, rows ordered by image id.

        One query and one copy into a numpy array (100k x 1024 in about half a second).
        The array is writable. An empty collection gives a 0 x embed_dim matrix.
        """
        collection = self.get_collection_by_id(collection_id)
        rows = self._all(
            # Walks image_embeddings in key order: a JOIN ordered by id would sort the blobs.
            "SELECT image_id, dim, dtype, vector FROM image_embeddings "
            "WHERE image_id IN (SELECT id FROM images WHERE collection_id = ?) ORDER BY image_id",
            (collection.id,),
        )
        image_ids, dims, dtypes, blobs = _columns(rows, 4)
        return EmbeddingMatrix(
            image_ids=np.array(image_ids, dtype=np.int64),
            vectors=_decode_vectors(dims, dtypes, blobs, collection.embed_dim),
            model_id=collection.model_id,
        )

    def get_embeddings(self, image_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The normalised float32 embeddings of ``image_ids``, in the order given.

        Raises:
            NotFoundError: an id has no embedding.
        """
        wanted = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        # No ORDER BY: sorting in SQL would copy the blobs through a temporary B-tree.
        rows = self._all(
            "SELECT j.key, e.dim, e.dtype, e.vector FROM json_each(?) j "
            "JOIN image_embeddings e ON e.image_id = j.value",
            (_json_ids(wanted),),
        )
        keys, dims, dtypes, blobs = _columns(rows, 4)
        if len(rows) != len(wanted):
            found = np.zeros(len(wanted), dtype=bool)
            found[list(keys)] = True
            raise NotFoundError(f"No embedding for image ids {sorted(set(wanted[~found].tolist()))}")
        vectors = _decode_vectors(dims, dtypes, blobs, dims[0] if dims else 0)
        order = np.asarray(keys, dtype=np.int64)
        if np.any(order[1:] < order[:-1]):
            vectors = vectors[np.argsort(order)]
        return vectors

    # Videos

    def upsert_video(
        self,
        *,
        path: str,
        sha256: str,
        fps: float,
        frame_count: int,
        duration_s: float,
        width: int,
        height: int,
        rotation: int,
        size_bytes: int,
    ) -> VideoRecord:
        """Record a video; one seen before (same sha256) gets its path and metadata updated."""
        with self.transaction() as conn:
            conn.execute(
                """
                INSERT INTO videos (path, sha256, fps, frame_count, duration_s, width, height,
                    rotation, size_bytes, added)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (sha256) DO UPDATE SET path = excluded.path, fps = excluded.fps,
                    frame_count = excluded.frame_count, duration_s = excluded.duration_s,
                    width = excluded.width, height = excluded.height,
                    rotation = excluded.rotation, size_bytes = excluded.size_bytes
                """,
                (
                    os.fspath(path),
                    sha256,
                    float(fps),
                    int(frame_count),
                    float(duration_s),
                    int(width),
                    int(height),
                    int(rotation),
                    int(size_bytes),
                    _now(),
                ),
            )
            video = self.find_video(sha256)
            assert video is not None
            return video

    def get_video(self, video_id: int) -> VideoRecord:
        """One video. Raises NotFoundError."""
        row = self._one(f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE id = ?", (int(video_id),))
        if row is None:
            raise NotFoundError(f"No video with id {video_id}")
        return VideoRecord(*row)

    def find_video(self, sha256: str) -> VideoRecord | None:
        """The video with that content hash, or None."""
        row = self._one(f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE sha256 = ?", (sha256,))
        return VideoRecord(*row) if row else None

    def list_videos(self) -> list[VideoRecord]:
        """All videos, newest first."""
        rows = self._all(f"SELECT {_VIDEO_COLUMNS} FROM videos ORDER BY id DESC")
        return [VideoRecord(*row) for row in rows]

    # Frame-embedding cache

    def cached_frame_indices(self, video_sha256: str, embed_key: str) -> set[int]:
        """The frames of the video that have a cached embedding under ``embed_key``."""
        rows = self._all(
            "SELECT frame_index FROM frame_embeddings WHERE video_sha256 = ? AND embed_key = ?",
            (video_sha256, embed_key),
        )
        return {row[0] for row in rows}

    def add_frame_embeddings(
        self,
        video_sha256: str,
        embed_key: str,
        frame_indices: Sequence[int] | np.ndarray,
        times: Sequence[float] | np.ndarray,
        vectors: np.ndarray,
    ) -> None:
        """Cache frame embeddings (as given, not normalised) in one transaction.

        Args:
            embed_key: identifies how the embeddings were made (model, preprocessing, ...).
            vectors: (N, dim), one row per frame index; replaces cached rows of those frames.
        """
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        times_s = np.asarray(times, dtype=np.float64).reshape(-1)
        matrix = np.ascontiguousarray(vectors, dtype="<f4")
        if matrix.ndim != 2 or not len(indices) == len(times_s) == matrix.shape[0]:
            raise ValueError(
                f"Expected N frame indices, N times and an (N, dim) array, got {len(indices)}, "
                f"{len(times_s)} and {matrix.shape}"
            )
        dim = matrix.shape[1]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO frame_embeddings "
                "(video_sha256, embed_key, frame_index, time_s, dim, dtype, vector) "
                "VALUES (?, ?, ?, ?, ?, 'float32', ?)",
                (
                    (video_sha256, embed_key, index, time_s, dim, row.tobytes())
                    for index, time_s, row in zip(indices.tolist(), times_s.tolist(), matrix, strict=True)
                ),
            )

    def load_frame_embeddings(
        self,
        video_sha256: str,
        embed_key: str,
        frame_indices: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cached frame embeddings, in one query.

        Args:
            frame_indices: only these frames (those not cached are left out); None for all.

        Returns:
            ``(frame_index int64 (N,), time_s float64 (N,), vectors float32 (N, dim))``,
            sorted by frame index; vectors as stored (not normalised). (0, 0) when empty.
        """
        sql = (
            "SELECT frame_index, time_s, dim, dtype, vector FROM frame_embeddings "
            "WHERE video_sha256 = ? AND embed_key = ?"
        )
        params: list[Any] = [video_sha256, embed_key]
        if frame_indices is not None:
            sql += " AND frame_index IN (SELECT value FROM json_each(?))"
            params.append(_json_ids(frame_indices))
        rows = self._all(sql + " ORDER BY frame_index", params)
        indices, times, dims, dtypes, blobs = _columns(rows, 5)
        return (
            np.array(indices, dtype=np.int64),
            np.array(times, dtype=np.float64),
            _decode_vectors(dims, dtypes, blobs, dims[0] if dims else 0),
        )

    def clear_frame_cache(self, video_sha256: str | None = None) -> int:
        """Drop cached frame embeddings of one video, or of all; returns how many rows."""
        with self.transaction() as conn:
            if video_sha256 is None:
                cursor = conn.execute("DELETE FROM frame_embeddings")
            else:
                cursor = conn.execute("DELETE FROM frame_embeddings WHERE video_sha256 = ?", (video_sha256,))
            return cursor.rowcount

    # Runs

    def create_run(self, *, video_id: int, collection_id: int | None, model_id: str, params: dict) -> int:
        """Start a run (status 'running'); returns its id. Raises NotFoundError."""
        with self.transaction() as conn:
            self.get_video(video_id)
            if collection_id is not None:
                self.get_collection_by_id(collection_id)
            cursor = conn.execute(
                "INSERT INTO runs (video_id, collection_id, model_id, params, status, created) "
                "VALUES (?, ?, ?, ?, 'running', ?)",
                (
                    int(video_id),
                    None if collection_id is None else int(collection_id),
                    model_id,
                    _to_json(params),
                    _now(),
                ),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def _check_run(self, run_id: int) -> None:
        if self._one("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)) is None:
            raise NotFoundError(f"No run with id {run_id}")

    def add_frame_results(
        self,
        run_id: int,
        frame_indices: Sequence[int] | np.ndarray,
        times: Sequence[float] | np.ndarray,
        source_frames: Sequence[int] | np.ndarray,
        image_ids: np.ndarray,
        scores: np.ndarray,
    ) -> None:
        """Store the matches of a batch of frames, in one transaction.

        Args:
            source_frames: for each frame, the frame whose embedding was used.
            image_ids: (N, k), best match first; -1 where a frame has fewer than k matches.
            scores: (N, k), the score of each match.

        Frames stored before are replaced.
        """
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        times_s = np.asarray(times, dtype=np.float64).reshape(-1)
        sources = np.asarray(source_frames, dtype=np.int64).reshape(-1)
        ids = np.asarray(image_ids, dtype=np.int64)
        values = np.asarray(scores, dtype=np.float64)
        n = len(indices)
        shapes_ok = ids.ndim == 2 and ids.shape == values.shape and len(ids) == n
        if not (len(times_s) == len(sources) == n and shapes_ok):
            raise ValueError(
                f"Expected N frame indices, times and source frames and (N, k) image ids and "
                f"scores, got {n}, {len(times_s)}, {len(sources)}, {ids.shape} and {values.shape}"
            )
        rows, columns = np.nonzero(ids >= 0)
        with self.transaction() as conn:
            self._check_run(run_id)
            conn.execute(
                "DELETE FROM frame_matches WHERE run_id = ? "
                "AND frame_index IN (SELECT value FROM json_each(?))",
                (int(run_id), _json_ids(indices)),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO run_frames (run_id, frame_index, time_s, source_frame) "
                "VALUES (?, ?, ?, ?)",
                zip([int(run_id)] * n, indices.tolist(), times_s.tolist(), sources.tolist(), strict=True),
            )
            conn.executemany(
                "INSERT INTO frame_matches (run_id, frame_index, rank, image_id, score) "
                "VALUES (?, ?, ?, ?, ?)",
                zip(
                    [int(run_id)] * len(rows),
                    indices[rows].tolist(),
                    (columns + 1).tolist(),  # rank 1 is the best match
                    ids[rows, columns].tolist(),
                    values[rows, columns].tolist(),
                    strict=True,
                ),
            )

    def finish_run(self, run_id: int, *, status: str = "done", stats: dict | None = None) -> None:
        """Mark a run done, failed or cancelled, and store its stats (if given)."""
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be one of {RUN_STATUSES[1:]}, not {status!r}")
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, stats = coalesce(?, stats), finished = ? WHERE id = ?",
                (status, None if stats is None else _to_json(stats), _now(), int(run_id)),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"No run with id {run_id}")

    def replace_segments(self, run_id: int, segments: Sequence[Any]) -> None:
        """Replace the run's segments.

        Args:
            segments: objects with the attributes ``image_id, start_frame, end_frame,
                start_s, end_s, peak_score, mean_score, frames`` (a SegmentRecord, say).
        """
        with self.transaction() as conn:
            self._check_run(run_id)
            conn.execute("DELETE FROM segments WHERE run_id = ?", (int(run_id),))
            conn.executemany(
                f"INSERT INTO segments (run_id, {', '.join(_SEGMENT_FIELDS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (int(run_id), *(_plain(getattr(segment, f)) for f in _SEGMENT_FIELDS))
                    for segment in segments
                ],
            )

    def list_segments(self, run_id: int) -> list[SegmentRecord]:
        """The run's segments with their image paths, in order of start frame."""
        rows = self._all(
            """
            SELECT s.run_id, s.image_id, i.path, s.start_frame, s.end_frame, s.start_s, s.end_s,
                s.peak_score, s.mean_score, s.frames
            FROM segments s JOIN images i ON i.id = s.image_id
            WHERE s.run_id = ?
            ORDER BY s.start_frame, s.peak_score DESC, s.id
            """,
            (int(run_id),),
        )
        return [SegmentRecord(*row) for row in rows]

    def get_run(self, run_id: int) -> RunRecord:
        """One run. Raises NotFoundError."""
        row = self._one(_RUN_SELECT + "WHERE r.id = ?", (int(run_id),))
        if row is None:
            raise NotFoundError(f"No run with id {run_id}")
        return _run_record(row)

    def list_runs(
        self,
        *,
        video_id: int | None = None,
        collection_id: int | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one video and/or one collection."""
        where, params = [], []
        if video_id is not None:
            where.append("r.video_id = ?")
            params.append(int(video_id))
        if collection_id is not None:
            where.append("r.collection_id = ?")
            params.append(int(collection_id))
        sql = _RUN_SELECT
        if where:
            sql += "WHERE " + " AND ".join(where)
        sql += " ORDER BY r.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_run_record(row) for row in self._all(sql, params)]

    def load_frame_results(self, run_id: int) -> FrameResults:
        """The run's per-frame matches as arrays, in one query (see FrameResults).

        k is the largest number of matches any frame has.
        """
        self._check_run(run_id)
        rows = self._all(
            """
            SELECT f.frame_index, f.time_s, f.source_frame, coalesce(m.image_id, -1), m.score
            FROM run_frames f
            LEFT JOIN frame_matches m ON m.run_id = f.run_id AND m.frame_index = f.frame_index
            WHERE f.run_id = ?
            ORDER BY f.frame_index, m.rank
            """,
            (int(run_id),),
        )
        frames_col, times_col, sources_col, ids_col, scores_col = _columns(rows, 5)
        frames = np.array(frames_col, dtype=np.int64)
        image_ids = np.array(ids_col, dtype=np.int64)
        scores = np.array(scores_col, dtype=np.float64)  # None (no match) becomes NaN
        # One row per (frame, match): rows of a frame are adjacent, best match first.
        first = np.ones(len(frames), dtype=bool)
        first[1:] = frames[1:] != frames[:-1]
        starts = np.flatnonzero(first)
        row_frame = np.cumsum(first) - 1
        column = np.arange(len(frames)) - starts[row_frame]
        matched = image_ids >= 0
        k = int(column[matched].max()) + 1 if matched.any() else 0
        ids_out = np.full((len(starts), k), -1, dtype=np.int64)
        scores_out = np.full((len(starts), k), np.nan, dtype=np.float32)
        ids_out[row_frame[matched], column[matched]] = image_ids[matched]
        scores_out[row_frame[matched], column[matched]] = scores[matched]
        return FrameResults(
            frame_index=frames[starts],
            time_s=np.array(times_col, dtype=np.float64)[starts],
            source_frame=np.array(sources_col, dtype=np.int64)[starts],
            image_ids=ids_out,
            scores=scores_out,
        )

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its frame results and segments. Raises NotFoundError."""
        with self.transaction() as conn:
            cursor = conn.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))
            if cursor.rowcount == 0:
                raise NotFoundError(f"No run with id {run_id}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fspath(path: str | os.PathLike[str]) -> str:
    """A path as a string (NewImage and friends may carry ``pathlib.Path`` objects)."""
    return os.fspath(path) if isinstance(path, os.PathLike) else path


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"A collection name must not be empty, got {name!r}")
    return name.strip()


def _check_model(model_id: str, preprocessing: str, embed_dim: int) -> None:
    if not model_id:
        raise ValueError("model_id must not be empty")
    try:
        json.loads(preprocessing)
    except (TypeError, ValueError) as err:
        raise ValueError(f"preprocessing must be a JSON string, got {preprocessing!r}") from err
    if int(embed_dim) < 1:
        raise ValueError(f"embed_dim must be positive, not {embed_dim}")


def _file_name_casefold(path: str) -> str:
    """SQL function: the file name of ``path``, for case-insensitive matching."""
    return file_name(path).casefold()


def _image_filter(collection_id: int, name_filter: str | None) -> tuple[str, list[Any]]:
    where, params = "collection_id = ?", [int(collection_id)]
    if name_filter and name_filter.strip():
        where += " AND instr(_file_name_casefold(path), ?) > 0"
        params.append(name_filter.strip().casefold())
    return where, params


def _json_ids(ids: Sequence[int] | np.ndarray) -> str:
    """Ids as a JSON array, for ``IN (SELECT value FROM json_each(?))``."""
    return json.dumps(np.asarray(ids, dtype=np.int64).reshape(-1).tolist())


def _columns(rows: list[tuple], width: int) -> list[tuple]:
    """Transpose fetched rows into columns (``width`` empty tuples when there are none)."""
    return list(zip(*rows, strict=True)) if rows else [()] * width


def _normalised_embeddings(items: list[NewImage], collection: Collection) -> np.ndarray:
    """The items' embeddings as an (N, dim) little-endian float32 array with unit rows."""
    dim = collection.embed_dim
    for item in items:
        size = np.size(item.embedding)
        if size != dim:
            raise ValueError(
                f"{item.path}: the embedding has {size} values, but collection "
                f"{collection.name!r} (model {collection.model_id!r}) stores {dim}"
            )
    if not items:
        return np.zeros((0, dim), dtype="<f4")
    matrix = np.stack([np.asarray(item.embedding, dtype=np.float64).reshape(dim) for item in items])
    if not np.isfinite(matrix).all():
        bad = items[int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])]
        raise ValueError(f"{bad.path}: the embedding contains NaN or infinity")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype("<f4")


def _decode_vectors(
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


def _plain(value: Any) -> Any:
    """A numpy scalar as the matching Python scalar, for sqlite3."""
    return value.item() if isinstance(value, np.generic) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _to_json(value: dict) -> str:
    return json.dumps(value, default=_json_default)


def _run_record(row: tuple) -> RunRecord:
    values = list(row)
    values[5] = json.loads(values[5])
    values[7] = json.loads(values[7])
    return RunRecord(*values)
