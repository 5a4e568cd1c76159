"""The match pipeline: analyse a video's (sampled) frames against a collection and store the run.

The pipeline decodes in a background thread (frames are chosen, converted and preprocessed
there, see :mod:`core.model.frames`) while the main thread runs the model, searches the
collection and writes results, one transaction per batch. Frame embeddings are cached by
(video SHA-256, model, precision, preprocessing, frame index): matching the same video again,
with other options or against another collection, runs no model pass for frames already seen.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.matching.params import MatchParams
from core.matching.regions import RegionSearch, RegionSettings
from core.matching.runs import EmptyCollectionError, RunView, finish_run
from core.matching.sampling import FramePlanner, Sampling
from core.matching.search import VectorSearch, open_search
from core.media.video import DecodeReport, Frame, VideoInfo, probe_video
from core.model.features import FeatureExtractor, l2_normalize
from core.model.frames import COMPUTE, FrameBatch, frame_batches
from core.model.setup import ModelSetup
from core.prefetch import background
from core.progress import Cancelled, ProgressCallback, ProgressReporter, announce
from db import Collection, Index, VideoRecord, check_model

logger = logging.getLogger(__name__)

# Tags of recorded frames besides COMPUTE: the embedding is cached, or the result is inherited.
_CACHED, _INHERIT = 1, 2


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a finished match run did, and the run as stored."""

    view: RunView
    video: VideoInfo
    frames_decoded: int
    frames_computed: int  # model forward passes
    frames_from_cache: int
    frames_inherited: int
    elapsed_s: float
    decode: DecodeReport  # what the video held: frames decoded, lost, whether it ended early

    @property
    def run_id(self) -> int:
        return self.view.run.id

    @property
    def frames_recorded(self) -> int:
        """Frames with a result (analysed, cached or inherited)."""
        return len(self.view.results)

    @property
    def matched_frames(self) -> int:
        return int(self.view.matched().sum())

    @property
    def video_seconds_per_second(self) -> float:
        return self.video.duration_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def check_collection(index: Index, collection: str, setup: ModelSetup) -> Collection:
    """The collection, checked against the model (its setup is enough) and for images.

    Raises:
        db.NotFoundError, db.ModelMismatchError, EmptyCollectionError.
    """
    coll = index.get_collection(collection)
    check_model(coll, setup.model_id, setup.preprocessing.to_json(), setup.hidden_size)
    if coll.image_count == 0:
        raise EmptyCollectionError(
            f"Collection {coll.name!r} has no images yet: index some first (python -m core index PATH "
            f"--collection {coll.name})."
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
        mtime_ns=info.mtime_ns,
    )


def identify_video(
    index: Index, path: str | os.PathLike, hash_progress: Callable[[int, int], None] | None = None
) -> VideoInfo:
    """:func:`probe_video`, without reading the whole file to hash it when it is the one stored at
    that path, unchanged (same size and modification time): a nightly batch or index-videos of a
    large library read every video whole only to find it done.

    Raises:
        VideoOpenError: as :func:`probe_video`.
    """
    try:
        stat = os.stat(path)
        known = index.find_video_file(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        known = None  # probe_video says what is wrong with the file
    if known is None:  # new or changed: hashed
        return probe_video(path, hash_progress=hash_progress)
    info = probe_video(path, compute_hash=False)
    if (info.size_bytes, info.mtime_ns) != (stat.st_size, stat.st_mtime_ns):  # changed meanwhile
        return probe_video(path, hash_progress=hash_progress)
    return replace(info, sha256=known.sha256)


def run_parameters(
    setup: ModelSetup,
    sampling: Sampling,
    params: MatchParams,
    max_frames: int | None,
    regions: RegionSettings | None = None,
) -> dict:
    """What a run stores as its parameters; a run with the same ones is resumed (or skipped by a
    batch, once done)."""
    return {
        **params.to_dict(),
        "sampling": sampling.to_dict(),
        "embed_key": setup.embed_key(),
        "preprocessing": setup.preprocessing.to_json(),
        "precision": setup.precision,
        "max_frames": max_frames,
        **({"regions": regions.to_dict()} if regions else {}),
    }


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
    regions: RegionSettings | None = None,
    info: VideoInfo | None = None,
) -> RunSummary:
    """Match (sampled) frames of a video against a collection and store the run.

    An unfinished run (interrupted, cancelled or failed) of the same video, collection, model
    and options is resumed rather than started again: its frames are recomputed from the
    frame-embedding cache (no model pass for frames analysed before) and replace what it had.

    With ``regions``, each analysed frame is also searched for images that fill only part of
    it (:mod:`core.matching.regions`), and its best region is stored with the run.

    Raises:
        VideoOpenError: the video cannot be opened or has no frames.
        db.NotFoundError / db.ModelMismatchError / EmptyCollectionError: collection problems.
        Cancelled: ``cancel`` was set; the run is kept with status ``cancelled``.
    """
    sampling = sampling or Sampling.auto()
    params = params or MatchParams()
    batch_size = batch_size or extractor.batch_size
    coll = check_collection(index, collection, extractor.setup)
    # what happens before the first frame is told too: hashing a long video takes seconds (the
    # first event comes once the video has opened: a file that is no video gets its error alone)
    reading = ProgressReporter("reading video", "MB", None, progress, cancel)

    def hashed(done: int, size: int) -> None:
        mib = 1 << 20
        reading.total = max(1, -(-size // mib))  # whole MB, rounded up: a small file is "1 / 1 MB"
        reading.update(-(-done // mib), Path(video_path).name)
        reading.check_cancelled()

    info = info or identify_video(index, video_path, hash_progress=hashed)
    video = register_video(index, info)
    announce(progress, "loading collection", f"{coll.image_count:,} embeddings of {coll.name}")
    searcher = open_search(index, coll, maintain=True)  # exact, or the approximate index of a large one
    embed_key = extractor.embed_key()
    finder = RegionSearch(extractor, searcher, index.get_thumbnails, regions) if regions else None
    # region mode needs every analysed frame's pixels: the cache of whole-frame embeddings is
    # written, not read
    cached = set() if finder else index.cached_frame_indices(info.sha256, embed_key)
    run_params = run_parameters(extractor.setup, sampling, params, max_frames, regions)
    resumable = index.find_resumable_run(
        video_id=video.id, collection_id=coll.id, model_id=extractor.model_id, params=run_params
    )
    if resumable is not None:  # an interrupted, cancelled or failed run with these options
        run_id = resumable.id
        index.restart_run(run_id)
        logger.info(
            "resuming run %d (%s); frames analysed before come from the cache", run_id, resumable.status
        )
    else:
        run_id = index.create_run(
            video_id=video.id, collection_id=coll.id, model_id=extractor.model_id, params=run_params
        )
    total = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
    reporter = ProgressReporter("matching", "frames", total or None, progress, cancel)
    counts = {"computed": 0, "cached": 0, "inherited": 0, "decoded": 0}
    last: tuple[np.ndarray, np.ndarray] | None = None
    planner = sampling.planner(extractor.preprocessing, threshold=params.threshold)
    decode = DecodeReport()

    def classify(frame: Frame) -> tuple[int, int]:
        decision = planner.decide(frame.index, frame.time_s, frame.rgb)
        if not decision.analyse:
            return _INHERIT, decision.source
        return (_CACHED if frame.index in cached else COMPUTE), frame.index

    try:
        reporter.update(0)
        producer = frame_batches(
            str(video_path),
            extractor.preprocessing,
            batch_size,
            classify=classify,
            select=planner.wants,
            max_frames=max_frames,
            max_pending=planner.max_pending,  # results reach the planner in time (sampling.py)
            pin_memory=extractor.device.type == "cuda",
            report=decode,
            extra=finder.prepare if finder else None,
        )
        # held in a name so that the except clauses below release the planner before the
        # decoding thread is stopped (it may wait for a result)
        batches = background(producer, maxsize=2, name="video-decoder")
        for batch in batches:
            reporter.check_cancelled()
            if len(batch):
                last = _process_batch(
                    index,
                    extractor,
                    info.sha256,
                    embed_key,
                    run_id,
                    searcher,
                    params,
                    batch,
                    last,
                    planner,
                    finder,
                )
                counts["computed"] += int((batch.tag == COMPUTE).sum())
                counts["cached"] += int((batch.tag == _CACHED).sum())
                counts["inherited"] += int((batch.tag == _INHERIT).sum())
            counts["decoded"] = batch.decoded
            reporter.update(batch.decoded)
        stats = {
            **counts,
            "elapsed_s": reporter.elapsed_s,
            "decisions": dict(planner.reasons),  # why frames were analysed or inherited (Decision)
            "decode": {
                "frames": decode.decoded,
                "lost_frames": decode.lost,
                "corrupt_packets": decode.corrupt_packets,
                "duration_s": decode.duration_s,
                "expected_frames": decode.expected,
                "ended_early": decode.ended_early,
            },
        }
        if decode.complete and decode.decoded + decode.lost != info.frame_count:
            # the container's count was an estimate (VFR) or a promise the file does not keep
            register_video(
                index, replace(info, frame_count=decode.decoded + decode.lost, duration_s=decode.duration_s)
            )
        view = finish_run(index, run_id, params, stats)
    except (Cancelled, KeyboardInterrupt):  # stopped by the user, from the dashboard or with Ctrl-C
        planner.close()
        index.finish_run(run_id, status="cancelled", stats={**counts, "elapsed_s": reporter.elapsed_s})
        raise
    except BaseException:
        planner.close()
        index.finish_run(run_id, status="failed", stats={**counts, "elapsed_s": reporter.elapsed_s})
        raise
    logger.info(
        "run %d: %d frames recorded (%d computed, %d cached, %d inherited) in %.1f s",
        run_id,
        len(view.results),
        counts["computed"],
        counts["cached"],
        counts["inherited"],
        reporter.elapsed_s,
    )
    return RunSummary(
        view=view,
        video=info,
        frames_decoded=counts["decoded"],
        frames_computed=counts["computed"],
        frames_from_cache=counts["cached"],
        frames_inherited=counts["inherited"],
        elapsed_s=reporter.elapsed_s,
        decode=decode,
    )


def _process_batch(
    index: Index,
    extractor: FeatureExtractor,
    sha: str,
    embed_key: str,
    run_id: int,
    searcher: VectorSearch,
    params: MatchParams,
    batch: FrameBatch,
    last: tuple[np.ndarray, np.ndarray] | None,
    planner: FramePlanner,
    finder: RegionSearch | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Embed, search and store one batch, report each analysed frame's best and runner-up
    scores to the planner; returns the last analysed frame's result."""
    analysed = batch.tag != _INHERIT
    vectors = np.zeros((int(analysed.sum()), extractor.hidden_size), np.float32)
    order = np.flatnonzero(analysed)  # positions in the batch, in frame order
    compute = batch.tag[order] == COMPUTE
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
    index.add_frame_results(run_id, batch.index, batch.time, batch.source, out_ids, out_scores)
    if finder is not None:
        index.add_frame_regions(run_id, batch.index, *finder.for_batch(batch, unit))
    if len(order):
        return out_ids[order[-1]].copy(), out_scores[order[-1]].copy()
    return last
