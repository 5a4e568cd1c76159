"""A video's frames analysed against a collection: decode, sample, embed, search, batch by batch,
wherever the results go.

One loop serves a run on this machine (:func:`core.matching.pipeline.match_video`, whose sink
writes each batch to SQLite) and a cluster worker (:mod:`core.matching.cluster`, whose sink keeps
the batches in memory for the driver, the only writer). Both therefore sample alike: the planner
hears each analysed frame's best and runner-up scores (sampling by certainty) and region mode
searches the same frames.

Frames are decoded, chosen and preprocessed in a background thread (:mod:`core.model.frames`)
while this thread runs the model and searches. Every decoded frame that the sampling keeps is
*recorded* with its source: itself when analysed (embedded now, or taken from the cache), else the
last analysed frame, whose result it inherits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.matching.params import MatchParams
from core.matching.regions import RegionSearch
from core.matching.sampling import FramePlanner
from core.matching.search import VectorSearch
from core.media.video import DecodeReport, Frame
from core.model.features import FeatureExtractor, l2_normalize
from core.model.frames import COMPUTE, FrameBatch, frame_batches
from core.prefetch import background
from core.progress import ProgressCallback, ProgressReporter

CACHED, INHERIT = 1, 2
"""Tags of recorded frames besides :data:`~core.model.frames.COMPUTE`: analysed, with an
embedding already cached; or not analysed (the result of its source frame stands for it)."""


def classifier(planner: FramePlanner, cached: Collection[int]) -> Callable[[Frame], tuple[int, int]]:
    """Each decoded frame's tag and source, as the planner decides (called in the decoding
    thread): analysed now (COMPUTE), analysed from the cache (CACHED), or inheriting its source's
    result (INHERIT)."""

    def classify(frame: Frame) -> tuple[int, int]:
        decision = planner.decide(frame.index, frame.time_s, frame.rgb)
        if not decision.analyse:
            return INHERIT, decision.source
        return (CACHED if frame.index in cached else COMPUTE), frame.index

    return classify


class FrameSink(Protocol):
    """Where one run's batches go, in frame order."""

    def cached_vectors(self, frames: np.ndarray) -> np.ndarray:
        """The cached embeddings of ``frames`` (analysed before), in their order."""
        ...

    def embedded(self, frames: np.ndarray, times: np.ndarray, vectors: np.ndarray) -> None:
        """Embeddings computed now (the frame cache)."""
        ...

    def results(
        self,
        frames: np.ndarray,
        times: np.ndarray,
        sources: np.ndarray,
        image_ids: np.ndarray,
        scores: np.ndarray,
    ) -> None:
        """Every recorded frame's top-k (N×k, -1 / NaN where fewer)."""
        ...

    def regions(
        self, frames: np.ndarray, image_ids: np.ndarray, scores: np.ndarray, boxes: np.ndarray
    ) -> None:
        """Every recorded frame's best region (region mode only)."""
        ...


@dataclass(slots=True)
class Analysis:
    """What :func:`analyse_frames` did (so far, when it was stopped)."""

    computed: int = 0  # model forward passes
    cached: int = 0  # analysed from the frame cache
    inherited: int = 0
    decoded: int = 0
    decode: DecodeReport = field(default_factory=DecodeReport)
    decisions: dict = field(default_factory=dict)  # why frames were analysed or inherited
    elapsed_s: float = 0.0

    def counts(self) -> dict:
        """The work counts a run's stats keep, also those of a stopped run."""
        return {
            "computed": self.computed,
            "cached": self.cached,
            "inherited": self.inherited,
            "decoded": self.decoded,
            "elapsed_s": self.elapsed_s,
        }

    def stats(self) -> dict:
        """A finished run's stats: the counts, the planner's reasons and what the video held."""
        d = self.decode
        return {
            **self.counts(),
            "decisions": dict(self.decisions),
            "decode": {
                "frames": d.decoded,
                "lost_frames": d.lost,
                "corrupt_packets": d.corrupt_packets,
                "duration_s": d.duration_s,
                "expected_frames": d.expected,
                "ended_early": d.ended_early,
            },
        }


def analyse_frames(
    video_path: str | os.PathLike,
    extractor: FeatureExtractor,
    searcher: VectorSearch,
    planner: FramePlanner,
    params: MatchParams,
    sink: FrameSink,
    *,
    cached: Collection[int] = frozenset(),
    finder: RegionSearch | None = None,
    batch_size: int | None = None,
    max_frames: int | None = None,
    total: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    analysis: Analysis | None = None,
) -> Analysis:
    """Analyse a video's frames batch by batch into ``sink``.

    Args:
        planner: the run's sampling (told every analysed frame's best and runner-up score).
        cached: analysed frames whose embeddings ``sink`` has (no model pass; none in region
            mode, which needs every analysed frame's pixels).
        total: frames expected (for progress).
        analysis: filled as the work goes (the caller reads how far a stopped run got).

    Raises:
        core.progress.Cancelled: ``cancel`` was set; the batches before it are in ``sink``.
    """
    done = analysis if analysis is not None else Analysis()
    reporter = ProgressReporter("matching", "frames", total or None, progress, cancel)
    last: tuple[np.ndarray, np.ndarray] | None = None

    try:
        reporter.update(0)
        producer = frame_batches(
            str(video_path),
            extractor.preprocessing,
            batch_size or extractor.batch_size,
            classify=classifier(planner, cached),
            select=planner.wants,
            max_frames=max_frames,
            max_pending=planner.max_pending,  # results reach the planner in time (sampling.py)
            pin_memory=extractor.device.type == "cuda",
            report=done.decode,
            extra=finder.prepare if finder else None,
        )
        for batch in background(producer, maxsize=2, name="video-decoder"):
            reporter.check_cancelled()
            if len(batch):
                last = _process_batch(extractor, searcher, params, batch, last, planner, sink, finder)
                done.computed += int((batch.tag == COMPUTE).sum())
                done.cached += int((batch.tag == CACHED).sum())
                done.inherited += int((batch.tag == INHERIT).sum())
            done.decoded = batch.decoded
            done.elapsed_s = reporter.elapsed_s
            reporter.update(batch.decoded)
    except BaseException:
        # releases the decoding thread, which may wait for a result, before it is stopped
        planner.close()
        done.elapsed_s = reporter.elapsed_s
        raise
    done.decisions = dict(planner.reasons)
    done.elapsed_s = reporter.elapsed_s
    return done


def _process_batch(
    extractor: FeatureExtractor,
    searcher: VectorSearch,
    params: MatchParams,
    batch: FrameBatch,
    last: tuple[np.ndarray, np.ndarray] | None,
    planner: FramePlanner,
    sink: FrameSink,
    finder: RegionSearch | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Embed, search and hand on one batch, report each analysed frame's best and runner-up
    scores to the planner; returns the last analysed frame's result."""
    analysed = batch.tag != INHERIT
    vectors = np.zeros((int(analysed.sum()), extractor.hidden_size), np.float32)
    order = np.flatnonzero(analysed)  # positions in the batch, in frame order
    compute = batch.tag[order] == COMPUTE
    if compute.any():
        assert batch.pixels is not None
        emb = extractor.forward(batch.pixels).cls
        vectors[compute] = emb
        pos = order[compute]
        sink.embedded(batch.index[pos], batch.time[pos], emb)
    if (~compute).any():
        vectors[~compute] = sink.cached_vectors(batch.index[order[~compute]])
    unit = l2_normalize(vectors)
    ids, scores = searcher.top_k(unit, params.top_k)
    for row, frame in zip(scores, batch.index[order], strict=True):
        planner.observe(int(frame), row[0], row[1] if len(row) > 1 else np.nan)
    k = params.top_k
    out_ids = np.full((len(batch), k), -1, np.int64)
    out_scores = np.full((len(batch), k), np.nan, np.float32)
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
    sink.results(batch.index, batch.time, batch.source, out_ids, out_scores)
    if finder is not None:
        sink.regions(batch.index, *finder.for_batch(batch, unit))
    if len(order):
        return out_ids[order[-1]].copy(), out_scores[order[-1]].copy()
    return last
