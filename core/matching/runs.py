"""Stored runs: re-open one as a :class:`RunView`, re-label it, re-match it without the model.

A :class:`RunView` is a run's per-frame results seen with one set of options (threshold, gap,
minimum duration): its matched frames, segments and :attr:`RunView.stats` all describe those
options, so what a page shows, what an export writes and what a rendered video draws agree.
A run made with regions also holds each frame's best region; a frame's best match is then the
better of the whole frame's and the region's (:func:`core.matching.regions.best_matches`).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from core.errors import WebSSLError
from core.matching.params import MatchParams
from core.matching.regions import FrameBests, best_matches, frame_bests, scored_images
from core.matching.search import open_search
from core.matching.segments import Segment, find_segments
from core.model.features import l2_normalize
from core.progress import ProgressCallback, ProgressReporter
from db import Collection, FrameRegions, FrameResults, Index, RunRecord, VideoRecord, check_model

logger = logging.getLogger(__name__)


class EmptyCollectionError(WebSSLError):
    """The collection has no images to match against."""


class CacheMissError(WebSSLError):
    """A re-match needs frame embeddings that are not cached."""


class IncompleteRunError(WebSSLError):
    """The run did not finish (interrupted, cancelled or failed): it covers part of the video."""


@dataclass(frozen=True, slots=True)
class RunView:
    """A stored run with its per-frame results, seen with :attr:`params`."""

    run: RunRecord
    video: VideoRecord
    results: FrameResults
    params: MatchParams
    image_paths: dict[int, str]
    segments: tuple[Segment, ...] = field(default=())
    regions: FrameRegions = field(default_factory=FrameRegions.empty)
    # each frame's best match and region: computed once per results and regions, and handed on
    # to the views made from this one with other options or paths (pages ask for them per frame)
    _bests: tuple[FrameResults, FrameRegions, FrameBests] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        known = self._bests
        if known is None or known[0] is not self.results or known[1] is not self.regions:
            bests = (self.results, self.regions, frame_bests(self.results, self.regions))
            object.__setattr__(self, "_bests", bests)

    @property
    def _frame_bests(self) -> FrameBests:
        assert self._bests is not None
        return self._bests[2]

    @property
    def best_image(self) -> np.ndarray:
        """Per recorded frame: its best image (the region's where it beats the whole frame), or -1."""
        return self._frame_bests.image

    @property
    def best_score(self) -> np.ndarray:
        """Per recorded frame: the score of :attr:`best_image` (NaN: none)."""
        return self._frame_bests.score

    def scored_images(self) -> tuple[np.ndarray, np.ndarray]:
        """Per recorded frame, every image it scored (N×k ids and scores, or N×(k+1) with its
        region): see :func:`core.matching.regions.scored_images`."""
        return scored_images(self.results, self.regions)

    @property
    def region_wins(self) -> np.ndarray:
        """Per recorded frame: :attr:`best_image` is its region's, not the whole frame's."""
        return self._frame_bests.region_wins

    @property
    def has_regions(self) -> bool:
        return bool(self.run.params.get("regions")) or len(self.regions) > 0

    def region_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per recorded frame: its region's image id (-1: none), score and N×4 box."""
        b = self._frame_bests
        return b.region_image, b.region_score, b.region_box

    def region_of(self, row: int) -> tuple[int, float, tuple[float, float, float, float]] | None:
        """The best region of recorded frame ``row``: (image id, score, box in frame pixels), or None."""
        ids, scores, boxes = self.region_arrays()
        if ids[row] < 0:
            return None
        return int(ids[row]), float(scores[row]), tuple(float(v) for v in boxes[row])  # type: ignore[return-value]

    def matched(self) -> np.ndarray:
        """Boolean per recorded frame: matched at this view's threshold."""
        return self.params.matched(self.best_score)

    @property
    def complete(self) -> bool:
        """The run finished: every frame it set out to analyse has a result."""
        return self.run.complete

    def incomplete_note(self) -> str:
        """Why the run covers only part of the video, and what to do ("" when it is complete)."""
        if self.complete:
            return ""
        last = f"frame {int(self.results.frame_index[-1])}" if len(self.results) else "no frame"
        action = (
            "still being written" if self.run.status == "running" else "match the video again to resume it"
        )
        return (
            f"Run {self.run.id} is {self.run.status}: it has results up to {last} of the "
            f"{self.video.frame_count} frames of the video ({action})."
        )

    @property
    def stats(self) -> dict:
        """The run's stored work counts, with ``matched`` and ``segments`` of this view's options."""
        return {
            **(self.run.stats or {}),
            "recorded": len(self.results),
            "matched": int(self.matched().sum()),
            "segments": len(self.segments),
        }

    def relabel(
        self,
        threshold: float | None = None,
        gap_tolerance_s: float | None = None,
        min_duration_s: float | None = None,
    ) -> RunView:
        """The same run seen with other options: recomputed from stored scores, no model."""
        params = self.params.updated(
            threshold=threshold, gap_tolerance_s=gap_tolerance_s, min_duration_s=min_duration_s
        )
        if params == self.params:
            return self
        segs = segments_of(self.results, params, self.regions, bests=self._frame_bests)
        return replace(self, params=params, segments=tuple(segs))

    def image_name(self, image_id: int) -> str:
        path = self.image_paths.get(int(image_id))
        return os.path.basename(path) if path else f"#{image_id}"

    def image_names(self, image_ids) -> dict[int, str]:
        """``image id -> file name`` of each distinct id among ``image_ids`` (-1, no image, left out)."""
        ids = np.asarray(image_ids, np.int64).ravel()
        return {int(i): self.image_name(int(i)) for i in np.unique(ids[ids >= 0])}

    def with_paths(self, paths: dict[int, str]) -> RunView:
        """The same view knowing more image paths (see ``load_run(..., all_paths=False)``)."""
        if paths.keys() <= self.image_paths.keys():
            return self
        return replace(self, image_paths={**self.image_paths, **paths})

    def missing_paths(self, image_ids) -> list[int]:
        """Those of ``image_ids`` whose path this view does not know."""
        return sorted({int(i) for i in image_ids if int(i) >= 0} - self.image_paths.keys())


def nearest_row(frame_index: np.ndarray, frame: int) -> int:
    """The row of the recorded frame nearest to ``frame`` (``frame_index`` is sorted).

    Raises:
        ValueError: no recorded frames.
    """
    fi = np.asarray(frame_index, np.int64)
    if len(fi) == 0:
        raise ValueError("the run has no recorded frames")
    pos = int(np.searchsorted(fi, frame))
    if pos <= 0:
        return 0
    if pos >= len(fi):
        return len(fi) - 1
    return pos if fi[pos] - frame < frame - fi[pos - 1] else pos - 1


def segments_of(
    results: FrameResults,
    params: MatchParams,
    regions: FrameRegions | None = None,
    *,
    bests: FrameBests | None = None,
) -> list[Segment]:
    """The segments of per-frame results (and regions) under ``params`` (``bests``: their
    :func:`~core.matching.regions.frame_bests`, when known)."""
    if not len(results) or not results.k:
        return []
    bests = bests or frame_bests(results, regions)
    return find_segments(
        results.frame_index,
        results.time_s,
        bests.image,
        bests.score,
        threshold=params.threshold,
        gap_tolerance_s=params.gap_tolerance_s,
        min_duration_s=params.min_duration_s,
    )


def finish_run(index: Index, run_id: int, params: MatchParams, stats: dict) -> RunView:
    """Store the segments of a run's results and mark it done with ``stats`` (work counts).

    Returns:
        The finished run's view; ``matched`` and ``segments`` of its stats come from it.
    """
    results = index.load_frame_results(run_id)
    regions = index.load_frame_regions(run_id)
    segs = segments_of(results, params, regions)
    index.replace_segments(run_id, segs)
    matched = int(params.matched(best_matches(results, regions)[1]).sum())
    index.finish_run(
        run_id,
        status="done",
        stats={**stats, "recorded": len(results), "matched": matched, "segments": len(segs)},
    )
    return load_run(index, run_id)


def load_run(index: Index, run_id: int, *, all_paths: bool = True) -> RunView:
    """A stored run with results and stored segments.

    Args:
        all_paths: know the path of every image in any frame's top-k (exports need them); with
            False only those of the stored segments and regions (a 2-hour run's best matches
            alone named 60,094 images of a 1M collection: fetching their paths read 184 MB of
            the database file into the server's memory; the dashboard fetches what it shows,
            see :meth:`RunView.with_paths`).

    Raises:
        db.NotFoundError: no such run.
    """
    run = index.get_run(run_id)
    video = index.get_video(run.video_id)
    results = index.load_frame_results(run_id)
    regions = index.load_frame_regions(run_id)
    params = MatchParams.from_dict(run.params)
    segments = tuple(index.list_segments(run_id))
    ids = results.image_ids.ravel() if all_paths else np.array([s.image_id for s in segments], np.int64)
    wanted = np.unique(np.concatenate([ids[ids >= 0], regions.image_ids]))
    paths = index.image_paths(wanted.tolist()) if len(wanted) else {}
    return RunView(run, video, results, params, paths, segments, regions)


def rematch(
    index: Index,
    run_id: int,
    *,
    collection: str | None = None,
    params: MatchParams | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RunView:
    """A new run from a stored one, with another collection and/or options, using only cached
    frame embeddings: no video decoding, no model (``progress``: the search, frame by frame).

    A run made with regions keeps its regions against its own collection (they do not depend on
    the threshold or top-k). Against another collection it has whole-frame matches only: finding
    regions there needs the model (``match --regions``), and a warning says so.

    Raises:
        CacheMissError: some frame embeddings are no longer cached (run ``match`` again).
        db.ModelMismatchError: the collection is bound to another model than the run's.
    """
    old = index.get_run(run_id)
    video = index.get_video(old.video_id)
    if not old.complete:
        raise IncompleteRunError(
            f"Run {run_id} is {old.status}: it covers only part of the video, and a re-match of it "
            "would too. Resume it first: match the same video with the same options again."
        )
    new_params = params or MatchParams.from_dict(old.params)
    coll = index.get_collection(collection) if collection else index.get_collection_by_id(old.collection_id)
    check_model(coll, old.model_id, old.params.get("preprocessing"))
    if coll.image_count == 0:
        raise EmptyCollectionError(f"Collection {coll.name!r} has no images yet.")
    prev = index.load_frame_results(run_id)
    regions = None
    kept = dict(old.params)
    if old.params.get("regions"):
        if coll.id == old.collection_id:
            regions = index.load_frame_regions(run_id)
            if old.collection_changed:
                logger.warning(
                    "Run %d searched parts of frames (regions) before collection %r changed: this "
                    "re-match keeps those regions, and looks for images added since in whole frames "
                    "only. For their regions, match the video again: match VIDEO --collection %s --regions",
                    run_id,
                    coll.name,
                    coll.name,
                )
        else:
            del kept["regions"]
            logger.warning(
                "Run %d found images in parts of frames (regions); against collection %r this "
                "re-match has whole-frame matches only. For regions, match the video again: "
                "match VIDEO --collection %s --regions",
                run_id,
                coll.name,
                coll.name,
            )
    run_params = {**kept, **new_params.to_dict(), "rematched_from": run_id}
    return store_cached_run(
        index,
        video=video,
        collection=coll,
        model_id=old.model_id,
        run_params=run_params,
        params=new_params,
        frame_index=prev.frame_index,
        time_s=prev.time_s,
        source_frame=prev.source_frame,
        regions=regions,
        cache_note=f"Run {run_id}",
        progress=progress,
        cancel=cancel,
    )


def search_again(
    index: Index,
    run_id: int,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RunView:
    """A done run brought up to date with its collection as it is now, from its cached frames only
    (no decoding, no model): the same run, parameters and recorded frames, searched again, so
    that a batch finds it done. What a batch does with a run whose collection has changed since
    (a nightly batch over an archive must not leave a new run per video per night).

    Raises:
        CacheMissError: some frame embeddings are no longer cached (match the video again); the
            run is left as it was.
        IncompleteRunError: the run is not done.
        core.progress.Cancelled: ``cancel`` was set while searching; the run is left as it was.
    """
    old = index.get_run(run_id)
    if not old.complete or old.collection_id is None:
        raise IncompleteRunError(f"Run {run_id} is {old.status}: only a done run is searched again.")
    prev = index.load_frame_results(run_id)
    params = MatchParams.from_dict(old.params)
    ids, scores, analysed = cached_results(
        index,
        video=index.get_video(old.video_id),
        collection=index.get_collection_by_id(old.collection_id),
        embed_key=old.params["embed_key"],
        params=params,
        source_frame=prev.source_frame,
        cache_note=f"Run {run_id}",
        progress=progress,
        cancel=cancel,
    )
    kept = {key: old.stats[key] for key in ("decisions", "decode") if key in old.stats}
    counts = {"computed": 0, "cached": analysed, "inherited": len(prev) - analysed}
    stats = {**counts, **kept, "searched_again": int(old.stats.get("searched_again", 0)) + 1}
    if _same_results(prev, ids, scores):  # most new pictures are in no frame's top-k of most videos
        index.mark_current(run_id, {**old.stats, **stats})
        return load_run(index, run_id, all_paths=False)
    index.refresh_run(run_id)  # its results go, and it searches its collection as it is now
    index.add_frame_results(run_id, prev.frame_index, prev.time_s, prev.source_frame, ids, scores)
    return finish_run(index, run_id, params, stats)


def take_place(index: Index, run_id: int, view: RunView) -> RunView:
    """``view``'s run, just matched again from the video because the collection of the done run
    ``run_id`` changed, put in that run's place (:meth:`db.Index.take_over_run`): as a run
    searched again in place, it keeps its id, and runs do not pile up night after night."""
    index.take_over_run(run_id, view.run.id)
    return replace(view, run=index.get_run(run_id))


def _same_results(prev: FrameResults, ids: np.ndarray, scores: np.ndarray) -> bool:
    """Whether a run's stored results (``prev``, k columns or fewer) are ``ids`` and ``scores``."""
    k = ids.shape[1]
    if prev.k > k:
        return False
    pad = k - prev.k
    old_ids = np.pad(prev.image_ids, ((0, 0), (0, pad)), constant_values=-1)
    old_scores = np.pad(prev.scores.astype(np.float32), ((0, 0), (0, pad)), constant_values=np.nan)
    return np.array_equal(old_ids, ids) and np.allclose(old_scores, scores, rtol=0, atol=1e-6, equal_nan=True)


def out_of_date_runs(index: Index, collection_id: int | None = None) -> list[RunRecord]:
    """The done runs (of a collection) whose collection has changed since they searched it, but
    for those superseded: the same video was matched again since, with the same options, against
    the collection as it is now (the newer run is the answer; the old one stays until deleted)."""
    out = []
    for run in index.list_runs(collection_id=collection_id, changed_only=True):
        newest = index.find_run(
            video_id=run.video_id,
            collection_id=int(run.collection_id),
            model_id=run.model_id,
            params=run.params,
            statuses=("done",),
        )
        if newest is None or newest.id == run.id or newest.collection_changed:
            out.append(run)
    return out


def store_cached_run(
    index: Index,
    *,
    video: VideoRecord,
    collection: Collection,
    model_id: str,
    run_params: dict,
    params: MatchParams,
    frame_index: np.ndarray,
    time_s: np.ndarray,
    source_frame: np.ndarray,
    stats: dict | None = None,
    regions: FrameRegions | None = None,
    cache_note: str = "The run",
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RunView:
    """Store a new run whose analysed frames are all in the frame-embedding cache: no video, no
    model (:func:`rematch`).

    Args:
        run_params: the run's stored parameters (``embed_key`` names the cached embeddings).
        regions: the frames' best regions to store with the results (found before, against
            this collection).

    Raises:
        CacheMissError: some source frames have no cached embedding.
        core.progress.Cancelled: ``cancel`` was set while searching (nothing is stored).
    """
    ids, scores, analysed = cached_results(
        index,
        video=video,
        collection=collection,
        embed_key=run_params["embed_key"],
        params=params,
        source_frame=source_frame,
        cache_note=cache_note,
        progress=progress,
        cancel=cancel,
    )
    run_id = index.create_run(
        video_id=video.id, collection_id=collection.id, model_id=model_id, params=run_params
    )
    index.add_frame_results(run_id, frame_index, time_s, source_frame, ids, scores)
    if regions is not None and len(regions):
        index.add_frame_regions(run_id, regions.frame_index, regions.image_ids, regions.scores, regions.boxes)
    counts = {"computed": 0, "cached": analysed, "inherited": int(len(frame_index) - analysed)}
    return finish_run(index, run_id, params, {**counts, **(stats or {})})


def cached_results(
    index: Index,
    *,
    video: VideoRecord,
    collection: Collection,
    embed_key: str,
    params: MatchParams,
    source_frame: np.ndarray,
    cache_note: str,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Each recorded frame's top-k (N×k ids and scores), from its source frame's cached embedding
    searched against ``collection``, and how many frames were searched (the analysed ones).

    Raises:
        CacheMissError: some source frames have no cached embedding.
        core.progress.Cancelled: ``cancel`` was set while searching.
    """
    sources = np.unique(source_frame)
    got_idx, _, vecs = index.load_frame_embeddings(video.sha256, embed_key, sources.tolist())
    if len(got_idx) != len(sources):
        raise CacheMissError(
            f"{cache_note}: {len(sources) - len(got_idx)} frame embeddings are no longer cached; "
            "match the video again instead."
        )
    searcher = open_search(index, collection, maintain=not index.readonly, queries=len(vecs))
    ids, scores = _search_in_blocks(searcher, l2_normalize(vecs), params.top_k, progress, cancel)
    row_of = np.searchsorted(got_idx, source_frame)
    k = params.top_k
    out_ids = np.full((len(source_frame), k), -1, np.int64)
    out_scores = np.full((len(source_frame), k), np.nan, np.float32)
    out_ids[:, : ids.shape[1]] = ids[row_of]
    out_scores[:, : scores.shape[1]] = scores[row_of]
    return out_ids, out_scores, int(len(sources))


SEARCH_BLOCK = 2048
"""Frames searched at once when a stored run is searched again (progress and cancelling between)."""


def _search_in_blocks(
    searcher, unit: np.ndarray, k: int, progress: ProgressCallback | None, cancel: threading.Event | None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of every row of ``unit``, told to ``progress`` block by block: an every-frame
    2-hour run has 216,000 frames to search."""
    reporter = ProgressReporter("searching frames", "frames", len(unit), progress, cancel)
    ids, scores = [], []
    for start in range(0, len(unit), SEARCH_BLOCK):
        reporter.check_cancelled()
        got_ids, got_scores = searcher.top_k(unit[start : start + SEARCH_BLOCK], k)
        ids.append(got_ids)
        scores.append(got_scores)
        reporter.update(min(len(unit), start + SEARCH_BLOCK))
    if not ids:
        return searcher.top_k(unit, k)
    return np.concatenate(ids), np.concatenate(scores)
