"""Match runs: analyse a video against a collection, store the run, re-open and re-label it.

The pipeline decodes in a background thread (frames are chosen, converted and preprocessed
there) while the main thread runs the model, searches the collection and writes results,
one transaction per batch. Frame embeddings are cached by (video SHA-256, model, precision,
preprocessing, frame index): matching the same video again, with other parameters or
against another collection, runs no model forward pass for frames already seen.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from core.errors import WebSSLError
from core.features import FeatureExtractor, l2_normalize
from core.matching import MatchParams, Segment, find_segments, matched_mask, top_k
from core.prefetch import background
from core.preprocess import Preprocessing, preprocess_images
from core.progress import Cancelled, ProgressCallback, ProgressReporter
from core.sampling import FramePlanner, Sampling
from core.video import VideoInfo, iter_frames, probe_video
from db import Collection, EmbeddingMatrix, FrameResults, Index, ModelMismatchError, RunRecord, VideoRecord

logger = logging.getLogger(__name__)


class EmptyCollectionError(WebSSLError):
    """The collection has no images to match against."""


class CacheMissError(WebSSLError):
    """A re-match needs frame embeddings that are not cached."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a finished match run did."""

    run_id: int
    video: VideoInfo
    collection: str
    frames_decoded: int
    frames_recorded: int  # frames with a result (analysed, cached or inherited)
    frames_computed: int  # model forward passes
    frames_from_cache: int
    frames_inherited: int
    matched_frames: int
    segments: tuple[Segment, ...]
    elapsed_s: float

    @property
    def video_seconds_per_second(self) -> float:
        return self.video.duration_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RunView:
    """A stored run with its per-frame results, ready to relabel, show or export."""

    run: RunRecord
    video: VideoRecord
    results: FrameResults
    params: MatchParams
    image_paths: dict[int, str]
    segments: tuple[Segment, ...] = field(default=())

    @property
    def best_image(self) -> np.ndarray:
        return self.results.image_ids[:, 0] if self.results.k else np.full(len(self.results), -1, np.int64)

    @property
    def best_score(self) -> np.ndarray:
        return self.results.scores[:, 0] if self.results.k else np.full(len(self.results), np.nan, np.float32)

    def matched(self, threshold: float | None = None) -> np.ndarray:
        return matched_mask(self.best_score, self.params.threshold if threshold is None else threshold)

    def relabel(
        self,
        threshold: float | None = None,
        gap_tolerance_s: float | None = None,
        min_duration_s: float | None = None,
    ) -> RunView:
        """The same run seen with other segment options: recomputed from stored scores, no model."""
        params = self.params.updated(
            threshold=threshold, gap_tolerance_s=gap_tolerance_s, min_duration_s=min_duration_s
        )
        segs = _segments(self.results, params)
        return RunView(self.run, self.video, self.results, params, self.image_paths, tuple(segs))

    def image_name(self, image_id: int) -> str:
        path = self.image_paths.get(int(image_id))
        return os.path.basename(path) if path else f"#{image_id}"


def _segments(results: FrameResults, params: MatchParams) -> list[Segment]:
    if not len(results) or not results.k:
        return []
    return find_segments(
        results.frame_index,
        results.time_s,
        results.image_ids[:, 0],
        results.scores[:, 0],
        threshold=params.threshold,
        gap_tolerance_s=params.gap_tolerance_s,
        min_duration_s=params.min_duration_s,
    )


def _store_segments(index: Index, run_id: int, params: MatchParams) -> tuple[list[Segment], int]:
    """Segments of a run's stored results, written to the run; returns them and the matched count."""
    results = index.load_frame_results(run_id)
    segs = _segments(results, params)
    index.replace_segments(run_id, segs)
    matched = int(matched_mask(results.scores[:, 0], params.threshold).sum()) if results.k else 0
    return segs, matched


# -- the pipeline ---------------------------------------------------------------------------
@dataclass(slots=True)
class _Batch:
    index: np.ndarray  # frame indices of the recorded frames, in order
    time: np.ndarray
    kind: np.ndarray  # 0 = compute, 1 = cached, 2 = inherit
    source: np.ndarray  # frame whose embedding gives the result
    pixels: torch.Tensor | None  # preprocessed frames of kind 0, in order
    decoded: int  # frames decoded so far (selected or not)


_COMPUTE, _CACHED, _INHERIT = 0, 1, 2


def _batches(
    path: str,
    planner: FramePlanner,
    cached: set[int],
    prep: Preprocessing,
    batch_size: int,
    max_frames: int | None,
    max_pending: int = 512,
    pin_memory: bool = False,
) -> Iterator[_Batch]:
    """Producer: decode, decide, preprocess; runs in the background thread.

    Only frames that need a model pass are kept (at most ``batch_size`` of them) and
    preprocessed here, overlapping with inference; with ``pin_memory`` (CUDA) their pixels go
    to page-locked memory so that the copy to the GPU can run asynchronously.
    """
    idx: list[int] = []
    times: list[float] = []
    kinds: list[int] = []
    sources: list[int] = []
    frames: list[np.ndarray] = []
    decoded = 0

    def counted(i: int, t: float) -> bool:
        nonlocal decoded
        decoded = i + 1
        return planner.wants(i, t)

    def make() -> _Batch:
        pixels = preprocess_images(frames, prep) if frames else None
        if pixels is not None and pin_memory:
            pixels = pixels.pin_memory()
        return _Batch(
            np.asarray(idx, np.int64),
            np.asarray(times, np.float64),
            np.asarray(kinds, np.int8),
            np.asarray(sources, np.int64),
            pixels,
            decoded,
        )

    for frame in iter_frames(path, select=counted, max_frames=max_frames):
        decision = planner.decide(frame.index, frame.time_s, frame.rgb)
        if decision.analyse:
            kind = _CACHED if frame.index in cached else _COMPUTE
        else:
            kind = _INHERIT
        idx.append(frame.index)
        times.append(frame.time_s)
        kinds.append(kind)
        sources.append(decision.source)
        if kind == _COMPUTE:
            frames.append(frame.rgb)
        if len(frames) >= batch_size or len(idx) >= max_pending:
            yield make()
            idx, times, kinds, sources, frames = [], [], [], [], []
    yield make()  # the rest, possibly empty: it also reports the final decoded count


def check_collection_model(coll: Collection, model_id: str) -> None:
    """Refuse a collection built with another model (callers may check before loading one).

    Raises:
        db.ModelMismatchError: the message names both models and what to do.
    """
    if coll.model_id != model_id:
        raise ModelMismatchError(
            f"Collection {coll.name!r} was built with model {coll.model_id!r}, but this run uses "
            f"{model_id!r}. Run with --model {coll.model_id} or match against a collection built with "
            f"{model_id!r}."
        )


def _check_collection(index: Index, collection: str, model_id: str, prep: Preprocessing):
    coll = index.get_collection(collection)
    check_collection_model(coll, model_id)
    if coll.preprocessing != prep.to_json():
        raise ModelMismatchError(
            f"Collection {collection!r} was built with other preprocessing settings than this model's "
            "current ones; re-index it into a new collection."
        )
    if coll.image_count == 0:
        raise EmptyCollectionError(
            f"Collection {collection!r} has no images yet: index some first (python -m core index PATH "
            f"--collection {collection})."
        )
    return coll


def register_video(index: Index, info: VideoInfo) -> VideoRecord:
    return index.upsert_video(
        path=os.path.abspath(info.path),
        sha256=info.sha256,
        fps=info.fps,
        frame_count=info.frame_count,
        duration_s=info.duration_s,
        width=info.width,
        height=info.height,
        rotation=info.rotation,
        size_bytes=info.size_bytes,
    )


def match_video(
    index: Index,
    video_path: str | os.PathLike,
    collection: str,
    extractor: FeatureExtractor,
    *,
    sampling: Sampling | None = None,
    params: MatchParams | None = None,
    batch_size: int | None = None,
    max_frames: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RunSummary:
    """Match (sampled) frames of a video against a collection and store the run.

    Raises:
        VideoOpenError: the video cannot be opened or has no frames.
        db.NotFoundError / ModelMismatchError / EmptyCollectionError: collection problems.
        Cancelled: ``cancel`` was set; the run is kept with status ``cancelled``.
    """
    sampling = sampling or Sampling.auto()
    params = params or MatchParams()
    batch_size = batch_size or extractor.batch_size
    coll = _check_collection(index, collection, extractor.model_id, extractor.preprocessing)
    info = probe_video(video_path)
    video = register_video(index, info)
    matrix = index.load_embeddings(coll.id)
    embed_key = extractor.embed_key()
    cached = index.cached_frame_indices(info.sha256, embed_key)
    run_params = {
        **params.to_dict(),
        "sampling": sampling.to_dict(),
        "embed_key": embed_key,
        "precision": extractor.precision,
        "max_frames": max_frames,
    }
    run_id = index.create_run(
        video_id=video.id, collection_id=coll.id, model_id=extractor.model_id, params=run_params
    )
    total = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
    reporter = ProgressReporter("matching", "frames", total or None, progress, cancel)
    counts = {"computed": 0, "cached": 0, "inherited": 0, "recorded": 0, "decoded": 0}
    last: tuple[np.ndarray, np.ndarray] | None = None
    planner = sampling.planner(extractor.preprocessing)
    try:
        reporter.update(0)
        producer = _batches(
            str(video_path),
            planner,
            cached,
            extractor.preprocessing,
            batch_size,
            max_frames,
            pin_memory=extractor.device.type == "cuda",
        )
        for batch in background(producer, maxsize=2, name="video-decoder"):
            reporter.check_cancelled()
            if len(batch.index):
                last = _process_batch(
                    index, extractor, info.sha256, embed_key, run_id, matrix, params, batch, last, counts
                )
            counts["decoded"] = batch.decoded
            reporter.update(batch.decoded)
        segs, matched = _store_segments(index, run_id, params)
        stats = {
            **counts,
            "matched": matched,
            "segments": len(segs),
            "elapsed_s": reporter.elapsed_s,
            "decisions": dict(planner.reasons),  # why frames were analysed ("static": inherited)
        }
        index.finish_run(run_id, status="done", stats=stats)
    except Cancelled:
        index.finish_run(run_id, status="cancelled", stats={**counts, "elapsed_s": reporter.elapsed_s})
        raise
    except BaseException:
        index.finish_run(run_id, status="failed", stats={**counts, "elapsed_s": reporter.elapsed_s})
        raise
    logger.info(
        "run %d: %d frames recorded (%d computed, %d cached, %d inherited) in %.1f s",
        run_id,
        counts["recorded"],
        counts["computed"],
        counts["cached"],
        counts["inherited"],
        reporter.elapsed_s,
    )
    return RunSummary(
        run_id=run_id,
        video=info,
        collection=collection,
        frames_decoded=counts["decoded"],
        frames_recorded=counts["recorded"],
        frames_computed=counts["computed"],
        frames_from_cache=counts["cached"],
        frames_inherited=counts["inherited"],
        matched_frames=matched,
        segments=tuple(segs),
        elapsed_s=reporter.elapsed_s,
    )


def _process_batch(
    index: Index,
    extractor: FeatureExtractor,
    sha: str,
    embed_key: str,
    run_id: int,
    matrix: EmbeddingMatrix,
    params: MatchParams,
    batch: _Batch,
    last: tuple[np.ndarray, np.ndarray] | None,
    counts: dict[str, int],
) -> tuple[np.ndarray, np.ndarray] | None:
    analysed = batch.kind != _INHERIT
    vectors = np.zeros((int(analysed.sum()), extractor.hidden_size), np.float32)
    order = np.flatnonzero(analysed)  # positions in the batch, in frame order
    compute = batch.kind[order] == _COMPUTE
    if compute.any():
        assert batch.pixels is not None
        emb = extractor.forward(batch.pixels).cls
        vectors[compute] = emb
        pos = order[compute]
        index.add_frame_embeddings(sha, embed_key, batch.index[pos], batch.time[pos], emb)
    if (~compute).any():
        pos = order[~compute]
        got_idx, _, got_vecs = index.load_frame_embeddings(sha, embed_key, batch.index[pos].tolist())
        lookup = {int(i): j for j, i in enumerate(got_idx)}
        vectors[~compute] = got_vecs[[lookup[int(i)] for i in batch.index[pos]]]
    positions, scores = top_k(l2_normalize(vectors), matrix.vectors, params.top_k)
    ids = matrix.image_ids[positions] if positions.size else positions
    k = params.top_k
    out_ids = np.full((len(batch.index), k), -1, np.int64)
    out_scores = np.full((len(batch.index), k), np.nan, np.float32)
    out_ids[order, : ids.shape[1]] = ids
    out_scores[order, : scores.shape[1]] = scores
    # inherited frames take the result of their source, the last analysed frame before them
    source_row = {int(batch.index[p]): p for p in order}
    for p in np.flatnonzero(~analysed):
        src = int(batch.source[p])
        if src in source_row:
            out_ids[p], out_scores[p] = out_ids[source_row[src]], out_scores[source_row[src]]
        elif last is not None:
            out_ids[p], out_scores[p] = last
    index.add_frame_results(run_id, batch.index, batch.time, batch.source, out_ids, out_scores)
    counts["computed"] += int(compute.sum())
    counts["cached"] += int((~compute).sum())
    counts["inherited"] += int((~analysed).sum())
    counts["recorded"] += len(batch.index)
    if len(order):
        return out_ids[order[-1]].copy(), out_scores[order[-1]].copy()
    return last


# -- re-opening and re-matching -------------------------------------------------------------
def load_run(index: Index, run_id: int) -> RunView:
    """A stored run with results and stored segments.

    Raises:
        db.NotFoundError: no such run.
    """
    run = index.get_run(run_id)
    video = index.get_video(run.video_id)
    results = index.load_frame_results(run_id)
    params = MatchParams.from_dict(run.params)
    ids = np.unique(results.image_ids[results.image_ids >= 0]) if results.k else np.zeros(0, np.int64)
    images = index.get_images(ids.tolist())
    paths = {i: rec.path for i, rec in images.items()}
    segs = tuple(
        Segment(
            s.image_id, s.start_frame, s.end_frame, s.start_s, s.end_s, s.peak_score, s.mean_score, s.frames
        )
        for s in index.list_segments(run_id)
    )
    return RunView(run, video, results, params, paths, segs)


def rematch(
    index: Index,
    run_id: int,
    *,
    collection: str | None = None,
    params: MatchParams | None = None,
) -> int:
    """A new run from a stored one, with another collection and/or parameters, using only cached
    frame embeddings: no video decoding, no model.

    Raises:
        CacheMissError: some frame embeddings are no longer cached (run ``match`` again).
    """
    old = index.get_run(run_id)
    video = index.get_video(old.video_id)
    new_params = params or MatchParams.from_dict(old.params)
    coll = index.get_collection(collection) if collection else index.get_collection_by_id(old.collection_id)
    if coll.model_id != old.model_id:
        raise ModelMismatchError(
            f"Collection {coll.name!r} was built with model {coll.model_id!r}, but run {run_id} used "
            f"{old.model_id!r}: re-matching needs the same model."
        )
    if coll.image_count == 0:
        raise EmptyCollectionError(f"Collection {coll.name!r} has no images yet.")
    embed_key = old.params["embed_key"]
    prev = index.load_frame_results(run_id)
    sources = np.unique(prev.source_frame)
    got_idx, _, vecs = index.load_frame_embeddings(video.sha256, embed_key, sources.tolist())
    if len(got_idx) != len(sources):
        raise CacheMissError(
            f"Run {run_id}: {len(sources) - len(got_idx)} frame embeddings are no longer cached; "
            "match the video again instead."
        )
    matrix = index.load_embeddings(coll.id)
    positions, scores = top_k(l2_normalize(vecs), matrix.vectors, new_params.top_k)
    ids = matrix.image_ids[positions]
    row_of = np.searchsorted(got_idx, prev.source_frame)
    k = new_params.top_k
    out_ids = np.full((len(prev), k), -1, np.int64)
    out_scores = np.full((len(prev), k), np.nan, np.float32)
    out_ids[:, : ids.shape[1]] = ids[row_of]
    out_scores[:, : scores.shape[1]] = scores[row_of]
    run_params = {**old.params, **new_params.to_dict(), "rematched_from": run_id}
    new_id = index.create_run(
        video_id=video.id, collection_id=coll.id, model_id=old.model_id, params=run_params
    )
    index.add_frame_results(new_id, prev.frame_index, prev.time_s, prev.source_frame, out_ids, out_scores)
    segs, matched = _store_segments(index, new_id, new_params)
    stats = {
        "computed": 0,
        "cached": int(len(sources)),
        "inherited": int(len(prev) - len(sources)),
        "recorded": int(len(prev)),
        "matched": matched,
        "segments": len(segs),
    }
    index.finish_run(new_id, status="done", stats=stats)
    return new_id
