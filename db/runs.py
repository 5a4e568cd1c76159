"""Match runs: a video matched against a collection, its per-frame top-k matches, the best region of
each frame (runs made with regions) and segments."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from .chunks import chunk_row, region_chunk_row, results_from_chunks
from .errors import NotFoundError, RunInProgressError
from .records import FrameRegions, FrameResults, RunRecord, Segment
from .store import Store, json_ids, now, plain, record, to_json

RUN_STATUSES = ("running", "done", "failed", "cancelled")
"""What the runs table stores; a run shows as ``interrupted`` when it is ``running`` but its
process is gone (see :func:`_status`)."""
STALE_AFTER_S = 600.0
"""A run on another machine that has given no sign of life for this long counts as interrupted."""
HOST = socket.gethostname()

_CHANGED = "(c.id IS NOT NULL AND r.collection_version IS NOT c.content_version)"
"""Whether a run (``runs r``) searched its collection (``collections c``) as it was before a change."""
_CURRENT_VERSION = "(SELECT content_version FROM collections WHERE id = runs.collection_id)"
"""The version of a run's collection as it is now (in an UPDATE of ``runs``)."""
_RUN_SELECT = f"""
SELECT r.id, r.video_id, r.collection_id, c.name AS collection_name, r.model_id, r.params, r.status,
    r.stats, r.created, r.finished, v.path AS video_path, r.pid, r.host, r.heartbeat, r.revision,
    {_CHANGED} AS collection_changed
FROM runs r
JOIN videos v ON v.id = r.video_id
LEFT JOIN collections c ON c.id = r.collection_id
"""
_REGION_TABLES = ("run_regions", "run_region_chunks")
_RESULT_TABLES = ("run_frames", "frame_matches", "run_chunks", "segments", *_REGION_TABLES)
"""The tables that hold a run's results, by ``run_id`` (a run searched again keeps its regions)."""
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


def _reopen(conn, run_id: int, *, done: bool) -> bool:
    """Mark a run (a done one, or an unfinished one) as running again, by this process, searching
    its collection as it is now; False when there is no such run."""
    cursor = conn.execute(
        "UPDATE runs SET status = 'running', finished = NULL, pid = ?, host = ?, heartbeat = ?, "
        f"revision = revision + 1, collection_version = {_CURRENT_VERSION} WHERE id = ? AND status {'=' if done else '!='} 'done'",
        (os.getpid(), HOST, now(), int(run_id)),
    )
    return cursor.rowcount > 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _status(row) -> str:
    """The stored status, except that a ``running`` run whose process is gone is ``interrupted``:
    on this machine its process id is checked; elsewhere, its heartbeat must be recent."""
    if row["status"] != "running":
        return row["status"]
    if row["pid"] is None:  # left running by a version that did not record its process
        return "interrupted"
    if row["host"] == HOST:
        return "running" if _alive(int(row["pid"])) else "interrupted"
    beat = datetime.fromisoformat(row["heartbeat"]) if row["heartbeat"] else None
    if beat is None or (datetime.now(UTC) - beat).total_seconds() > STALE_AFTER_S:
        return "interrupted"
    return "running"


def _run_record(row) -> RunRecord:
    return record(
        RunRecord,
        row,
        params=json.loads(row["params"]),
        stats=json.loads(row["stats"]),
        status=_status(row),
        collection_changed=bool(row["collection_changed"]),
    )


class Runs(Store):
    """Runs, their frame results and segments (part of :class:`db.Index`)."""

    def create_run(self, *, video_id: int, collection_id: int | None, model_id: str, params: dict) -> int:
        """Start a run (status 'running'); returns its id. The run records the version of its
        collection's content that it searches (see ``collection_changed``). Raises NotFoundError."""
        with self.transaction() as conn:
            self.get_video(video_id)  # type: ignore[attr-defined]  # from db.videos
            if collection_id is not None:
                self.get_collection_by_id(collection_id)  # type: ignore[attr-defined]
            stamp = now()
            collection = None if collection_id is None else int(collection_id)
            cursor = conn.execute(
                "INSERT INTO runs (video_id, collection_id, model_id, params, status, created, pid, host, "
                "heartbeat, collection_version) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, "
                "(SELECT content_version FROM collections WHERE id = ?))",
                (
                    int(video_id),
                    collection,
                    model_id,
                    to_json(params),
                    stamp,
                    os.getpid(),
                    HOST,
                    stamp,
                    collection,
                ),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def find_resumable_run(
        self, *, video_id: int, collection_id: int, model_id: str, params: dict
    ) -> RunRecord | None:
        """The newest unfinished run (interrupted, cancelled or failed) of this video against
        this collection with exactly these parameters, if any: matching it again resumes it."""
        return self.find_run(
            video_id=video_id,
            collection_id=collection_id,
            model_id=model_id,
            params=params,
            statuses=("interrupted", "cancelled", "failed"),
        )

    def find_run(
        self,
        *,
        video_id: int,
        collection_id: int,
        model_id: str,
        params: dict,
        statuses: Sequence[str],
        before: int | None = None,
    ) -> RunRecord | None:
        """The newest run of this video against this collection with exactly these parameters
        whose status is one of ``statuses`` (``done``: a batch skips it), if any (``before``: among
        the runs older than that run)."""
        wanted = json.loads(to_json(params))
        rows = self._rows(
            _RUN_SELECT
            + "WHERE r.video_id = ? AND r.collection_id = ? AND r.model_id = ? AND r.id < ? ORDER BY r.id DESC",
            (int(video_id), int(collection_id), model_id, (1 << 62) if before is None else int(before)),
        )
        for row in rows:
            run = _run_record(row)
            if run.status in statuses and run.params == wanted:
                return run
        return None

    def restart_run(self, run_id: int) -> None:
        """Mark an unfinished run as running again, by this process (to resume it): it searches
        its collection as it is now."""
        with self.transaction() as conn:
            if not _reopen(conn, run_id, done=False):
                raise NotFoundError(f"No unfinished run with id {run_id}")

    def refresh_run(self, run_id: int) -> None:
        """Open a done run to be searched again by this process: its results go (frames, matches,
        segments; its regions stay), and it searches its collection as it is now.

        Raises:
            NotFoundError: no done run with this id.
        """
        with self.transaction() as conn:
            if not _reopen(conn, run_id, done=True):
                raise NotFoundError(f"No done run with id {run_id}")
            for table in (t for t in _RESULT_TABLES if t not in _REGION_TABLES):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (int(run_id),))

    def mark_current(self, run_id: int, stats: dict) -> None:
        """A done run that searching again left unchanged: it now counts as having searched its
        collection as it is now, and takes ``stats``.

        Raises:
            NotFoundError: no done run with this id.
        """
        with self.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE runs SET stats = ?, collection_version = {_CURRENT_VERSION} WHERE id = ? AND status = 'done'",
                (to_json(stats), int(run_id)),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"No done run with id {run_id}")

    def take_over_run(self, run_id: int, new_run_id: int) -> None:
        """Put a new, done run's results in the place of an older run of the same video and
        collection, in one transaction: the older run's id then holds the new results, options,
        stats and finish time (with a new revision; it keeps its creation time) and the new run's
        record goes. A run matched again from the video thereby replaces the one it brings up to
        date, as one searched again in place does, and links to that run stay valid.

        Raises:
            NotFoundError: either run is missing, or the new one is not done.
            RunInProgressError: a live process is still writing the older run.
            ValueError: the runs are of different videos or collections, or the same run.
        """
        old_id, new_id = int(run_id), int(new_run_id)
        if old_id == new_id:
            raise ValueError(f"run {old_id} cannot take its own place")
        with self.transaction() as conn:
            old = conn.execute("SELECT video_id, collection_id FROM runs WHERE id = ?", (old_id,)).fetchone()
            new = conn.execute(
                "SELECT video_id, collection_id FROM runs WHERE id = ? AND status = 'done'", (new_id,)
            ).fetchone()
            if old is None or new is None:
                raise NotFoundError(f"No run {old_id}, or no done run {new_id}")
            if tuple(old) != tuple(new):
                raise ValueError(f"runs {old_id} and {new_id} are of different videos or collections")
            self.check_not_written("r.id = ?", (old_id,))
            for table in _RESULT_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (old_id,))
                conn.execute(f"UPDATE {table} SET run_id = ? WHERE run_id = ?", (old_id, new_id))
            conn.execute(
                "UPDATE runs SET (model_id, params, status, stats, finished, pid, host, heartbeat, "
                "collection_version) = (SELECT model_id, params, status, stats, finished, pid, host, heartbeat, "
                "collection_version FROM runs WHERE id = ?), revision = revision + 1 WHERE id = ?",
                (new_id, old_id),
            )
            conn.execute("DELETE FROM runs WHERE id = ?", (new_id,))

    def _check_run(self, run_id: int) -> None:
        if self._row("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)) is None:
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
            conn.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (now(), int(run_id)))
            conn.execute(
                "DELETE FROM frame_matches WHERE run_id = ? "
                "AND frame_index IN (SELECT value FROM json_each(?))",
                (int(run_id), json_ids(indices)),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO run_frames (run_id, frame_index, time_s, source_frame) "
                "VALUES (?, ?, ?, ?)",
                zip([int(run_id)] * n, indices.tolist(), times_s.tolist(), sources.tolist(), strict=True),
            )
            conn.execute(
                "INSERT INTO run_chunks (run_id, frames, k, frame_index, time_s, source_frame, image_ids, scores) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    int(run_id),
                    *chunk_row(FrameResults(indices, times_s, sources, ids, values.astype(np.float32))),
                ),
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

    def add_frame_regions(
        self,
        run_id: int,
        frame_indices: Sequence[int] | np.ndarray,
        image_ids: Sequence[int] | np.ndarray,
        scores: Sequence[float] | np.ndarray,
        boxes: np.ndarray,
    ) -> None:
        """Store the best region of a batch of frames, in one transaction (replacing older rows).

        Args:
            image_ids: the image found in each frame's region; frames with -1 are skipped.
            boxes: (N, 4) left, top, right, bottom in frame pixels.
        """
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        corners = np.asarray(boxes, dtype=np.float64)
        n = len(indices)
        if not (len(ids) == len(values) == n and corners.shape == (n, 4)):
            raise ValueError(
                f"Expected N frame indices, image ids and scores and (N, 4) boxes, got {n}, {len(ids)}, "
                f"{len(values)} and {corners.shape}"
            )
        keep = (ids >= 0) & np.isfinite(values)
        with self.transaction() as conn:
            self._check_run(run_id)
            if keep.any():
                chunk = FrameRegions(indices[keep], ids[keep], values[keep], corners[keep])
                conn.execute(
                    "INSERT INTO run_region_chunks (run_id, frames, frame_index, image_ids, scores, boxes) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (int(run_id), *region_chunk_row(chunk)),
                )
            conn.executemany(
                "INSERT OR REPLACE INTO run_regions (run_id, frame_index, image_id, score, x0, y0, x1, y1) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (int(run_id), f, i, s, *box)
                    for f, i, s, box in zip(
                        indices[keep].tolist(),
                        ids[keep].tolist(),
                        values[keep].tolist(),
                        corners[keep].tolist(),
                        strict=True,
                    )
                ),
            )

    def load_frame_regions(self, run_id: int) -> FrameRegions:
        """The run's per-frame regions as arrays, from its region chunks in one query (see
        FrameRegions); a frame written twice keeps its last region. Empty for a run made
        without regions."""
        self._check_run(run_id)
        frames, index_b, ids_b, scores_b, boxes_b = self._columns(
            "SELECT frames, frame_index, image_ids, scores, boxes FROM run_region_chunks "
            "WHERE run_id = ? ORDER BY id",
            (int(run_id),),
            5,
        )
        if not frames:
            return FrameRegions.empty()
        index = np.concatenate([np.frombuffer(b, "<i8") for b in index_b])
        ids = np.concatenate([np.frombuffer(b, "<i8") for b in ids_b])
        # the last write of each frame wins: unique over the reversed order keeps the last one;
        # then frames whose last region's image was removed (-1) have none
        _, last = np.unique(index[::-1], return_index=True)
        keep = len(index) - 1 - last  # sorted by frame index, as np.unique sorts
        keep = keep[ids[keep] >= 0]
        return FrameRegions(
            frame_index=index[keep].astype(np.int64),
            image_ids=ids[keep].astype(np.int64),
            scores=np.concatenate([np.frombuffer(b, "<f4") for b in scores_b])[keep].astype(np.float32),
            boxes=np.concatenate(
                [np.frombuffer(b, "<f4").reshape(n, 4) for n, b in zip(frames, boxes_b, strict=True)]
            )[keep].astype(np.float32),
        )

    def finish_run(self, run_id: int, *, status: str = "done", stats: dict | None = None) -> None:
        """Mark a run done, failed or cancelled, and store its stats (if given)."""
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be one of {RUN_STATUSES[1:]}, not {status!r}")
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, stats = coalesce(?, stats), finished = ? WHERE id = ?",
                (status, None if stats is None else to_json(stats), now(), int(run_id)),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"No run with id {run_id}")

    def replace_segments(self, run_id: int, segments: Sequence[Segment]) -> None:
        """Replace the run's segments."""
        with self.transaction() as conn:
            self._check_run(run_id)
            conn.execute("DELETE FROM segments WHERE run_id = ?", (int(run_id),))
            conn.executemany(
                f"INSERT INTO segments (run_id, {', '.join(_SEGMENT_FIELDS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (int(run_id), *(plain(getattr(segment, f)) for f in _SEGMENT_FIELDS))
                    for segment in segments
                ],
            )

    def list_segments(self, run_id: int) -> list[Segment]:
        """The run's segments, in order of start frame."""
        rows = self._rows(
            f"SELECT {', '.join(_SEGMENT_FIELDS)} FROM segments WHERE run_id = ? "
            "ORDER BY start_frame, peak_score DESC, id",
            (int(run_id),),
        )
        return [record(Segment, row) for row in rows]

    def get_run(self, run_id: int) -> RunRecord:
        """One run. Raises NotFoundError."""
        row = self._row(_RUN_SELECT + "WHERE r.id = ?", (int(run_id),))
        if row is None:
            raise NotFoundError(f"No run with id {run_id}")
        return _run_record(row)

    def list_runs(
        self,
        *,
        video_id: int | None = None,
        collection_id: int | None = None,
        limit: int | None = None,
        changed_only: bool = False,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one video and/or one collection (``changed_only``: the
        done ones whose collection has changed since they searched it)."""
        where, params = [], []
        if changed_only:
            where.append(f"r.status = 'done' AND {_CHANGED}")
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
        return [_run_record(row) for row in self._rows(sql, params)]

    def load_frame_results(self, run_id: int) -> FrameResults:
        """The run's per-frame matches as arrays (see FrameResults), from its result chunks: one
        read of a few hundred rows for an hour of video. A frame written twice (a resumed run)
        keeps its last result. k is the largest number of matches any frame has."""
        self._check_run(run_id)
        columns = self._columns(
            "SELECT frames, k, frame_index, time_s, source_frame, image_ids, scores FROM run_chunks "
            "WHERE run_id = ? ORDER BY id",
            (int(run_id),),
            7,
        )
        return results_from_chunks(*columns)

    def delete_run(self, run_id: int) -> None:
        """Delete a run with its frame results and segments.

        Raises:
            NotFoundError: no such run.
            RunInProgressError: a live process is still writing it (its writes would fail).
        """
        with self.transaction() as conn:
            self._check_run(run_id)
            self.check_not_written("r.id = ?", (int(run_id),))
            conn.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))

    def check_not_written(self, where: str, params: Sequence) -> None:
        """Raise RunInProgressError if a live process is still writing one of the runs that
        ``where`` (SQL on ``runs r``) picks: deleting them would fail its writes."""
        for row in self._rows(_RUN_SELECT + f"WHERE r.status = 'running' AND {where}", params):
            if _status(row) == "running":
                raise RunInProgressError(
                    f"Run {row['id']} is still being written by process {row['pid']} on {row['host']}: "
                    "stop it (or let it finish) before deleting it."
                )


# -- result chunks: a batch of a run's results as arrays -------------------------------------
