"""Many videos matched against one collection: one run per video, resumable, with a summary.

A video whose run with the same collection, model and options is done already is skipped, unless
the collection has gained or lost images since (then it is matched again); an unfinished one is resumed (see :func:`core.matching.pipeline.match_video`); a video that cannot
be read is reported and the batch goes on. On one machine the videos are matched one after the
other (:func:`match_batch`); on a Ray cluster, workers decode and embed them while this process
alone writes SQLite (:mod:`core.matching.cluster`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from core.errors import VideoOpenError
from core.matching.params import MatchParams
from core.matching.pipeline import (
    check_collection,
    identify_video,
    match_video,
    register_video,
    run_parameters,
)
from core.matching.regions import RegionSettings
from core.matching.runs import RunView
from core.matching.sampling import Sampling
from core.media.video import VideoInfo, iter_video_files
from core.model.features import FeatureExtractor
from core.progress import ProgressCallback, ProgressReporter
from db import Collection, Index

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchItem:
    """What a batch did with one video."""

    path: str
    status: str  # "matched", "done before" or "failed"
    run_id: int | None = None
    frames: int = 0  # recorded
    analysed: int = 0
    computed: int = 0  # model passes
    matched: int = 0
    segments: int = 0
    duration_s: float = 0.0
    elapsed_s: float = 0.0
    reason: str = ""

    @classmethod
    def of_view(cls, path: str, status: str, view: RunView, elapsed_s: float) -> BatchItem:
        stats = view.stats
        return cls(
            path=path,
            status=status,
            run_id=view.run.id,
            frames=len(view.results),
            analysed=int(stats.get("computed", 0)) + int(stats.get("cached", 0)),
            computed=int(stats.get("computed", 0)),
            matched=int(stats.get("matched", 0)),
            segments=int(stats.get("segments", 0)),
            duration_s=view.video.duration_s,
            elapsed_s=elapsed_s,
        )


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What a batch did, video by video, in the order given."""

    items: tuple[BatchItem, ...] = field(default=())
    elapsed_s: float = 0.0
    workers: int = 1

    def count(self, status: str) -> int:
        return sum(item.status == status for item in self.items)

    @property
    def video_hours(self) -> float:
        return sum(item.duration_s for item in self.items if item.status == "matched") / 3600

    def summary(self) -> str:
        return (
            f"{len(self.items)} videos: {self.count('matched')} matched, {self.count('done before')} done "
            f"before, {self.count('failed')} failed; {self.video_hours:.2f} h of video in {self.elapsed_s:.1f} s"
        )


def batch_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The video files of the given files and folders (folders walked recursively).

    Raises:
        FileNotFoundError: a given path does not exist.
    """
    return [str(p) for p in iter_video_files(paths)]


@dataclass(frozen=True, slots=True)
class Planned:
    """A video of a batch, probed, with the finished run that makes it skippable (if any)."""

    path: str
    info: VideoInfo | None
    done: RunView | None = None
    reason: str = ""
    superseded: int | None = None  # a run done before, whose collection has changed since

    def matched(self, view: RunView, elapsed_s: float) -> BatchItem:
        """The item of this video once matched (saying why, when it had been done before)."""
        item = BatchItem.of_view(self.path, "matched", view, elapsed_s)
        if self.superseded is None:
            return item
        return replace(item, reason=f"the collection changed since run {self.superseded}")

    def skipped(self) -> BatchItem | None:
        """The item of a video that needs no work (unreadable, or done before); None otherwise."""
        if self.info is None:
            return BatchItem(self.path, "failed", reason=self.reason)
        if self.done is not None:
            return BatchItem.of_view(self.path, "done before", self.done, 0.0)
        return None


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch ready to run: its options (defaults filled in), collection and planned videos."""

    sampling: Sampling
    params: MatchParams
    files: list[str]
    collection: Collection
    plans: list[Planned]
    reporter: ProgressReporter


def start_batch(
    index: Index,
    paths: Iterable[str | os.PathLike],
    collection: str,
    extractor: FeatureExtractor,
    sampling: Sampling | None,
    params: MatchParams | None,
    max_frames: int | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    regions: RegionSettings | None = None,
) -> Batch:
    """Check the collection, list and probe the videos, find those matched before."""
    sampling = sampling or Sampling.auto()
    params = params or MatchParams()
    files = batch_files(paths)
    coll = check_collection(index, collection, extractor)
    reporter = ProgressReporter("matching videos", "videos", len(files), progress, cancel)
    reporter.update(0)
    plans = plan_batch(index, files, coll, extractor, sampling, params, max_frames, regions)
    return Batch(sampling, params, files, coll, plans, reporter)


def plan_batch(
    index: Index,
    files: list[str],
    coll: Collection,
    extractor: FeatureExtractor,
    sampling: Sampling,
    params: MatchParams,
    max_frames: int | None,
    regions: RegionSettings | None = None,
) -> list[Planned]:
    """Probe every video (identity by content hash) and find those matched before against the
    collection as it is now."""
    from core.matching.runs import load_run

    wanted = run_parameters(extractor, sampling, params, max_frames, regions)
    planned = []
    for path in files:
        try:
            info = identify_video(index, path)
        except VideoOpenError as err:
            planned.append(Planned(path, None, reason=err.reason))
            continue
        video = register_video(index, info)
        run = index.find_run(
            video_id=video.id,
            collection_id=coll.id,
            model_id=extractor.model_id,
            params=wanted,
            statuses=("done",),
        )
        if run is not None and run.collection_changed:
            planned.append(Planned(path, info, superseded=run.id))
        else:
            planned.append(Planned(path, info, load_run(index, run.id) if run else None))
    return planned


def match_batch(
    index: Index,
    paths: Iterable[str | os.PathLike],
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
) -> BatchReport:
    """Match every video of ``paths`` (files and folders) against ``collection``, one after the other
    (``regions``: each also in region mode, see :func:`core.matching.pipeline.match_video`).

    Raises:
        FileNotFoundError: a given path does not exist.
        db.NotFoundError / db.ModelMismatchError / EmptyCollectionError: collection problems
            (before any video is read).
        core.progress.Cancelled: ``cancel`` was set; finished videos and batches are kept.
    """
    batch = start_batch(
        index, paths, collection, extractor, sampling, params, max_frames, progress, cancel, regions
    )
    items = []
    for number, plan in enumerate(batch.plans):
        batch.reporter.check_cancelled()
        item = plan.skipped()
        if item is None:
            summary = match_video(
                index,
                plan.path,
                batch.collection.name,
                extractor,
                sampling=batch.sampling,
                params=batch.params,
                batch_size=batch_size,
                max_frames=max_frames,
                cancel=cancel,
                info=plan.info,
                regions=regions,
            )
            item = plan.matched(summary.view, summary.elapsed_s)
        items.append(item)
        batch.reporter.update(number + 1)
    return BatchReport(tuple(items), batch.reporter.elapsed_s)
