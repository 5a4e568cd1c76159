"""A run's results stored as chunks of arrays (one row per batch of frames, each column a blob),
and removed images taken out of them in place."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .records import FrameRegions, FrameResults


def chunk_row(results: FrameResults) -> tuple:
    """``(frames, k, frame_index, time_s, source_frame, image_ids, scores)`` for run_chunks:
    little-endian int64 / float64 / int64 / int64 (frames × k) / float32 (frames × k)."""
    return (
        len(results),
        results.k,
        np.ascontiguousarray(results.frame_index, "<i8").tobytes(),
        np.ascontiguousarray(results.time_s, "<f8").tobytes(),
        np.ascontiguousarray(results.source_frame, "<i8").tobytes(),
        np.ascontiguousarray(results.image_ids, "<i8").tobytes(),
        np.ascontiguousarray(results.scores, "<f4").tobytes(),
    )


def region_chunk_row(regions: FrameRegions) -> tuple:
    """``(frames, frame_index, image_ids, scores, boxes)`` for run_region_chunks: little-endian
    int64 / int64 / float32 / float32 (frames × 4)."""
    return (
        len(regions),
        np.ascontiguousarray(regions.frame_index, "<i8").tobytes(),
        np.ascontiguousarray(regions.image_ids, "<i8").tobytes(),
        np.ascontiguousarray(regions.scores, "<f4").tobytes(),
        np.ascontiguousarray(regions.boxes, "<f4").tobytes(),
    )


def results_from_chunks(frames, ks, index_b, time_b, source_b, ids_b, scores_b) -> FrameResults:
    """Chunks (columns of run_chunks, in write order) → FrameResults sorted by frame; a frame
    written more than once keeps its last result; chunks of a smaller k are padded."""
    if not frames:
        empty = np.zeros(0, np.int64)
        return FrameResults(
            empty, np.zeros(0), empty, np.zeros((0, 0), np.int64), np.zeros((0, 0), np.float32)
        )
    k = max(ks)
    ids_parts, score_parts = [], []
    for n, kk, ids, scores in zip(frames, ks, ids_b, scores_b, strict=True):
        part_ids = np.full((n, k), -1, np.int64)
        part_scores = np.full((n, k), np.nan, np.float32)
        part_ids[:, :kk] = np.frombuffer(ids, "<i8").reshape(n, kk)
        part_scores[:, :kk] = np.frombuffer(scores, "<f4").reshape(n, kk)
        ids_parts.append(part_ids)
        score_parts.append(part_scores)
    index = np.concatenate([np.frombuffer(b, "<i8") for b in index_b])
    times = np.concatenate([np.frombuffer(b, "<f8") for b in time_b])
    sources = np.concatenate([np.frombuffer(b, "<i8") for b in source_b])
    ids_all, scores_all = np.concatenate(ids_parts), np.concatenate(score_parts)
    # the last write of each frame wins: unique over the reversed order keeps the last occurrence
    _, last = np.unique(index[::-1], return_index=True)
    keep = len(index) - 1 - last  # sorted by frame index, as np.unique sorts
    used = ids_all[keep]
    k_used = int((used >= 0).any(axis=0).sum()) if used.size else 0
    return FrameResults(
        frame_index=index[keep].astype(np.int64),
        time_s=times[keep].astype(np.float64),
        source_frame=sources[keep].astype(np.int64),
        image_ids=used[:, :k_used].copy(),
        scores=scores_all[keep][:, :k_used].copy(),
    )


def results_from_rows(rows: list[tuple]) -> FrameResults:
    """Rows of ``(frame_index, time_s, source_frame, image_id or -1, score)``, ordered by frame and
    rank (the per-frame tables joined), → FrameResults (used to fill run_chunks for old runs)."""
    frames_col, times_col, sources_col, ids_col, scores_col = (
        list(zip(*rows, strict=True)) if rows else [()] * 5
    )
    frames = np.array(frames_col, dtype=np.int64)
    image_ids = np.array(ids_col, dtype=np.int64)
    scores = np.array(scores_col, dtype=np.float64)  # None (no match) becomes NaN
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


def forget_images_in_chunks(conn, collection_id: int, image_ids: Sequence[int] | np.ndarray) -> None:
    """Drop removed images from the result chunks of the collection's runs, as the cascade drops
    their per-frame matches: the matches behind one move up a rank. Regions of removed images
    leave the region chunks, as the cascade drops their rows. The collection's runs take a new
    revision. In the caller's transaction."""
    removed = np.asarray(image_ids, dtype=np.int64).reshape(-1)
    conn.execute("UPDATE runs SET revision = revision + 1 WHERE collection_id = ?", (int(collection_id),))
    _forget_images_in_region_chunks(conn, collection_id, removed)
    rows = conn.execute(
        "SELECT c.id, c.frames, c.k, c.image_ids, c.scores FROM run_chunks c JOIN runs r ON r.id = c.run_id "
        "WHERE r.collection_id = ?",
        (int(collection_id),),
    ).fetchall()
    for chunk_id, n, k, ids_blob, scores_blob in rows:
        ids = np.frombuffer(ids_blob, "<i8").reshape(n, k)
        gone = np.isin(ids, removed)
        if not gone.any():
            continue
        order = np.argsort(gone, axis=1, kind="stable")  # kept matches first, in rank order
        ids = np.take_along_axis(ids, order, 1).copy()
        scores = np.take_along_axis(np.frombuffer(scores_blob, "<f4").reshape(n, k), order, 1).copy()
        dropped = np.take_along_axis(gone, order, 1)
        ids[dropped], scores[dropped] = -1, np.nan
        _update_chunk(conn, "run_chunks", chunk_id, ids, scores)


def _forget_images_in_region_chunks(conn, collection_id: int, removed: np.ndarray) -> None:
    """Mark the regions of removed images as none (-1) in the region chunks: the frame keeps its
    place, so an older write of it cannot come back (see :meth:`Runs.load_frame_regions`)."""
    rows = conn.execute(
        "SELECT c.id, c.image_ids, c.scores FROM run_region_chunks c "
        "JOIN runs r ON r.id = c.run_id WHERE r.collection_id = ?",
        (int(collection_id),),
    ).fetchall()
    for chunk_id, ids_b, scores_b in rows:
        ids = np.frombuffer(ids_b, "<i8")
        gone = np.isin(ids, removed)
        if not gone.any():
            continue
        ids, scores = ids.copy(), np.frombuffer(scores_b, "<f4").copy()
        ids[gone], scores[gone] = -1, np.nan
        _update_chunk(conn, "run_region_chunks", chunk_id, ids, scores)


def _update_chunk(conn, table: str, chunk_id: int, ids: np.ndarray, scores: np.ndarray) -> None:
    """Write a chunk's image ids and scores back (``table``: run_chunks or run_region_chunks)."""
    conn.execute(
        f"UPDATE {table} SET image_ids = ?, scores = ? WHERE id = ?",
        (np.ascontiguousarray(ids, "<i8").tobytes(), np.ascontiguousarray(scores, "<f4").tobytes(), chunk_id),
    )
