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

from core.matching.analysis import Analysis, analyse_frames
from core.matching.params import MatchParams
from core.matching.regions import RegionSearch, RegionSettings
from core.matching.runs import EmptyCollectionError, RunView, finish_run, take_place
from core.matching.sampling import Sampling
from core.matching.search import open_search
from core.media.video import DecodeReport, VideoInfo, probe_video
from core.model.features import FeatureExtractor
from core.model.setup import ModelSetup
from core.progress import Cancelled, ProgressCallback, ProgressReporter, announce
from db import Collection, Index, VideoRecord, check_model

logger = logging.getLogger(__name__)


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
    """Match (sampled) frames of a video against a collection and store the run (what region mode
    can find in a large collection, :func:`core.matching.regions.large_collection_note`, is the
    caller's to tell: a batch tells it once).

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
    run_id = start_run(
        index,
        video,
        coll,
        extractor.model_id,
        run_parameters(extractor.setup, sampling, params, max_frames, regions),
    )
    total = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
    analysis = Analysis()
    try:
        analyse_frames(
            video_path,
            extractor,
            searcher,
            sampling.planner(extractor.preprocessing, threshold=params.threshold),
            params,
            IndexSink(index, info.sha256, embed_key, run_id),
            cached=cached,
            finder=finder,
            batch_size=batch_size,
            max_frames=max_frames,
            total=total,
            progress=progress,
            cancel=cancel,
            analysis=analysis,
        )
        view = finish_analysis(index, run_id, info, params, analysis)
    except (Cancelled, KeyboardInterrupt):  # stopped by the user, from the dashboard or with Ctrl-C
        index.finish_run(run_id, status="cancelled", stats=analysis.counts())
        raise
    except BaseException:
        index.finish_run(run_id, status="failed", stats=analysis.counts())
        raise
    logger.info(
        "run %d: %d frames recorded (%d computed, %d cached, %d inherited) in %.1f s",
        run_id,
        len(view.results),
        analysis.computed,
        analysis.cached,
        analysis.inherited,
        analysis.elapsed_s,
    )
    return RunSummary(
        view=view,
        video=info,
        frames_decoded=analysis.decoded,
        frames_computed=analysis.computed,
        frames_from_cache=analysis.cached,
        frames_inherited=analysis.inherited,
        elapsed_s=analysis.elapsed_s,
        decode=analysis.decode,
    )


def start_run(index: Index, video: VideoRecord, coll: Collection, model_id: str, run_params: dict) -> int:
    """The run to write: an unfinished one (interrupted, cancelled or failed) of this video,
    collection, model and options, resumed (its frames replaced as they come again: the cached
    ones need no model pass), or a new one."""
    resumable = index.find_resumable_run(
        video_id=video.id, collection_id=coll.id, model_id=model_id, params=run_params
    )
    if resumable is None:
        return index.create_run(
            video_id=video.id, collection_id=coll.id, model_id=model_id, params=run_params
        )
    index.restart_run(resumable.id)
    logger.info(
        "resuming run %d (%s); frames analysed before come from the cache", resumable.id, resumable.status
    )
    return resumable.id


def finish_analysis(
    index: Index,
    run_id: int,
    info: VideoInfo,
    params: MatchParams,
    analysis: Analysis,
    worker: str | None = None,
) -> RunView:
    """Mark an analysed run done with its stats (segments made; ``worker``: where it was analysed,
    when not here), and correct the video's frame count where the file held another than its
    container said. Where the run brings up to date an older done run of the video with the
    same options, whose collection has changed since, it takes that run's place
    (:func:`core.matching.runs.take_place`): a video matched again night after night, as images
    are added, keeps one run, as one searched again in place does."""
    decode = analysis.decode
    if decode.complete and decode.decoded + decode.lost != info.frame_count:
        # the container's count was an estimate (VFR) or a promise the file does not keep
        register_video(
            index, replace(info, frame_count=decode.decoded + decode.lost, duration_s=decode.duration_s)
        )
    stats = analysis.stats() | ({"worker": worker} if worker else {})
    view = finish_run(index, run_id, params, stats)
    run = view.run
    if run.collection_id is None:
        return view
    older = index.find_run(
        video_id=run.video_id,
        collection_id=run.collection_id,
        model_id=run.model_id,
        params=run.params,
        statuses=("done",),
        before=run.id,
    )
    return take_place(index, older.id, view) if older is not None and older.collection_changed else view


@dataclass(frozen=True, slots=True)
class IndexSink:
    """A run's batches written to SQLite as they come, one transaction each (see
    :class:`core.matching.analysis.FrameSink`)."""

    index: Index
    sha256: str
    embed_key: str
    run_id: int

    def cached_vectors(self, frames: np.ndarray) -> np.ndarray:
        got_idx, _, got_vecs = self.index.load_frame_embeddings(self.sha256, self.embed_key, frames.tolist())
        lookup = {int(i): j for j, i in enumerate(got_idx)}
        return got_vecs[[lookup[int(i)] for i in frames]]

    def embedded(self, frames: np.ndarray, times: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add_frame_embeddings(self.sha256, self.embed_key, frames, times, vectors)

    def results(self, frames, times, sources, image_ids, scores) -> None:
        self.index.add_frame_results(self.run_id, frames, times, sources, image_ids, scores)

    def regions(self, frames, image_ids, scores, boxes) -> None:
        self.index.add_frame_regions(self.run_id, frames, image_ids, scores, boxes)
