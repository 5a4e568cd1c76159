"""Videos, identified by the hash of their content, the cache of their frame embeddings, and
the video library (videos indexed for search by image).

A frame embedding is cached under (video SHA-256, embedding key, frame index): the embedding
key names how it was made (model, precision, preprocessing), so matching the same video again,
with other options or against another collection, needs no model pass for frames seen before.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import NotFoundError
from .records import LibraryVideo, SearchableVideo, VideoRecord
from .store import Store, decode_vectors, json_ids, now, record, to_json

_VIDEO_COLUMNS = (
    "id, path, sha256, fps, frame_count, duration_s, width, height, rotation, size_bytes, added, mtime_ns"
)
_V_COLUMNS = ", ".join("v." + c.strip() for c in _VIDEO_COLUMNS.split(","))  # joined as ``videos v``


class Videos(Store):
    """Videos and cached frame embeddings (part of :class:`db.Index`)."""

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
        mtime_ns: int | None = None,
    ) -> VideoRecord:
        """Record a video; one seen before (same sha256) gets its path and metadata updated.
        ``mtime_ns``: the file's modification time when it was hashed (see :meth:`find_video_file`)."""
        with self.transaction() as conn:
            conn.execute(
                """
                INSERT INTO videos (path, sha256, fps, frame_count, duration_s, width, height,
                    rotation, size_bytes, added, mtime_ns)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (sha256) DO UPDATE SET path = excluded.path, fps = excluded.fps,
                    frame_count = excluded.frame_count, duration_s = excluded.duration_s,
                    width = excluded.width, height = excluded.height,
                    rotation = excluded.rotation, size_bytes = excluded.size_bytes,
                    mtime_ns = excluded.mtime_ns
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
                    now(),
                    None if mtime_ns is None else int(mtime_ns),
                ),
            )
            video = self.find_video(sha256)
            assert video is not None
            return video

    def find_video_file(self, path: str, size_bytes: int, mtime_ns: int) -> VideoRecord | None:
        """The video last hashed at ``path`` when the file had this size and modification time:
        a file found so is taken as unchanged (as rsync and make judge it), so its identity is
        known without reading it whole."""
        row = self._row(
            f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE path = ? AND size_bytes = ? AND mtime_ns = ?",
            (os.fspath(path), int(size_bytes), int(mtime_ns)),
        )
        return None if row is None else record(VideoRecord, row)

    def get_video(self, video_id: int) -> VideoRecord:
        """One video. Raises NotFoundError."""
        row = self._row(f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE id = ?", (int(video_id),))
        if row is None:
            raise NotFoundError(f"No video with id {video_id}")
        return record(VideoRecord, row)

    def find_video(self, sha256: str) -> VideoRecord | None:
        """The video with that content hash, or None."""
        row = self._row(f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE sha256 = ?", (sha256,))
        return record(VideoRecord, row) if row else None

    # -- the frame-embedding cache -------------------------------------------------------------
    def cached_frame_indices(self, video_sha256: str, embed_key: str) -> set[int]:
        """The frames of the video that have a cached embedding under ``embed_key``."""
        (indices,) = self._columns(
            "SELECT frame_index FROM frame_embeddings WHERE video_sha256 = ? AND embed_key = ?",
            (video_sha256, embed_key),
            1,
        )
        return set(indices)

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
            # An upsert, not INSERT OR REPLACE: a cached frame keeps its id (its key in the
            # approximate index), and the change is logged by a trigger (see db.vectors).
            conn.executemany(
                "INSERT INTO frame_embeddings "
                "(video_sha256, embed_key, frame_index, time_s, dim, dtype, vector) "
                "VALUES (?, ?, ?, ?, ?, 'float32', ?) "
                "ON CONFLICT (video_sha256, embed_key, frame_index) DO UPDATE SET "
                "time_s = excluded.time_s, dim = excluded.dim, dtype = excluded.dtype, vector = excluded.vector",
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
            params.append(json_ids(frame_indices))
        indices, times, dims, dtypes, blobs = self._columns(sql + " ORDER BY frame_index", params, 5)
        return (
            np.array(indices, dtype=np.int64),
            np.array(times, dtype=np.float64),
            decode_vectors(dims, dtypes, blobs, dims[0] if dims else 0),
        )

    def clear_frame_cache(self, video_sha256: str | None = None) -> int:
        """Drop cached frame embeddings of one video, or of all, with the library entries that
        claimed them (so ``index-videos`` indexes those videos again); returns how many frames."""
        with self.transaction() as conn:
            if video_sha256 is None:
                conn.execute("DELETE FROM library_videos")
                cursor = conn.execute("DELETE FROM frame_embeddings")
            else:
                conn.execute("DELETE FROM library_videos WHERE video_sha256 = ?", (video_sha256,))
                cursor = conn.execute("DELETE FROM frame_embeddings WHERE video_sha256 = ?", (video_sha256,))
            return cursor.rowcount

    def forget_videos(self, video_sha256s: Sequence[str]) -> int:
        """Take videos out of the library: their cached frames and library entries go, and the
        video's own record too unless a run still refers to it (runs keep their results).
        Returns how many cached frames were dropped."""
        shas = json.dumps(list(video_sha256s))
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM library_videos WHERE video_sha256 IN (SELECT value FROM json_each(?))", (shas,)
            )
            cursor = conn.execute(
                "DELETE FROM frame_embeddings WHERE video_sha256 IN (SELECT value FROM json_each(?))", (shas,)
            )
            conn.execute(
                "DELETE FROM videos WHERE sha256 IN (SELECT value FROM json_each(?)) "
                "AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.video_id = videos.id)",
                (shas,),
            )
            return cursor.rowcount

    # -- the video library ---------------------------------------------------------------------
    def mark_library_video(
        self, video_sha256: str, embed_key: str, *, sampling: dict, complete: bool
    ) -> None:
        """Record that a video was indexed for the library under ``embed_key`` (completely or not)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO library_videos (video_sha256, embed_key, sampling, frames, complete, updated) "
                "VALUES (?, ?, ?, coalesce((SELECT frames FROM frame_counts WHERE video_sha256 = ? "
                "AND embed_key = ?), 0), ?, ?) ON CONFLICT (video_sha256, embed_key) DO UPDATE SET "
                "sampling = excluded.sampling, frames = excluded.frames, complete = excluded.complete, "
                "updated = excluded.updated",
                (video_sha256, embed_key, to_json(sampling), video_sha256, embed_key, int(complete), now()),
            )

    def list_library_videos(
        self, embed_keys: Sequence[str] | None = None, *, video_sha256: str | None = None
    ) -> list[LibraryVideo]:
        """Videos indexed for the library (of these embedding keys; one video's entries), by path."""
        sql = (
            f"SELECT {_V_COLUMNS}, l.embed_key, "
            "l.sampling, l.frames, l.complete, l.updated FROM library_videos l "
            "JOIN videos v ON v.sha256 = l.video_sha256"
        )
        where: list[str] = []
        params: list[Any] = []
        if video_sha256 is not None:
            where.append("l.video_sha256 = ?")
            params.append(video_sha256)
        if embed_keys is not None:
            where.append("l.embed_key IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(embed_keys)))
        if where:
            sql += " WHERE " + " AND ".join(where)
        out = []
        for row in self._rows(sql + " ORDER BY v.path, l.embed_key", params):
            out.append(
                LibraryVideo(
                    video=record(VideoRecord, row),
                    embed_key=row["embed_key"],
                    sampling=json.loads(row["sampling"]),
                    frames=int(row["frames"]),
                    complete=bool(row["complete"]),
                    updated=row["updated"],
                )
            )
        return out

    def searchable_videos(self, embed_keys: Sequence[str] | None = None) -> list[SearchableVideo]:
        """Every video with cached frames (of these embedding keys), by path: what ``find``
        searches, whether ``index-videos`` or a match run cached the frames."""
        where, params = "", []
        if embed_keys is not None:
            where, params = (
                "WHERE embed_key IN (SELECT value FROM json_each(?))",
                [json.dumps(list(embed_keys))],
            )
        sql = (
            f"SELECT {_V_COLUMNS}, f.embed_key, f.frames, l.complete "
            f"FROM (SELECT video_sha256, embed_key, frames FROM frame_counts {where}) f "
            "JOIN videos v ON v.sha256 = f.video_sha256 "
            "LEFT JOIN library_videos l ON l.video_sha256 = f.video_sha256 AND l.embed_key = f.embed_key "
            "ORDER BY v.path, f.embed_key"
        )
        return [
            SearchableVideo(
                video=record(VideoRecord, row),
                embed_key=row["embed_key"],
                frames=int(row["frames"]),
                indexed=row["complete"] is not None,
                complete=bool(row["complete"]),
            )
            for row in self._rows(sql, params)
        ]

    def library_video(self, video_sha256: str, embed_key: str) -> LibraryVideo | None:
        """The library entry of one video under one embedding key, or None."""
        found = self.list_library_videos([embed_key], video_sha256=video_sha256)
        return found[0] if found else None

    def find_videos(self, sha256s: Sequence[str]) -> dict[str, VideoRecord]:
        """``sha256 -> VideoRecord`` for those of ``sha256s`` that are known, in one query."""
        rows = self._rows(
            f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE sha256 IN (SELECT value FROM json_each(?))",
            (json.dumps(list(sha256s)),),
        )
        return {row["sha256"]: record(VideoRecord, row) for row in rows}

    def embed_keys_with_frames(self, embed_keys: Sequence[str]) -> list[str]:
        """Those of ``embed_keys`` that have cached frame embeddings."""
        return [
            key
            for key in embed_keys
            if self._row("SELECT 1 FROM frame_embeddings WHERE embed_key = ? LIMIT 1", (key,)) is not None
        ]
