"""Many videos matched against one collection: one run per video, resumable, with a summary.

A video whose run with the same collection, model and options is done already is skipped, unless
the collection has gained or lost images since: then that run is searched again from its cached
frames (:func:`core.matching.runs.search_again`). An unfinished run is resumed (see
:func:`core.matching.pipeline.match_video`); a video that cannot be read is reported and the
batch goes on. On one machine the videos are matched one after the
other (:func:`match_batch`); on a Ray cluster, workers analyse them while this process
alone writes SQLite (:mod:`core.matching.cluster`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
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
from core.matching.regions import RegionSettings, large_collection_note
from core.matching.runs import CacheMissError, RunView, search_again
from core.matching.sampling import Sampling
from core.media.video import VideoInfo, iter_video_files
from core.model.features import FeatureExtractor
from core.model.on_demand import ModelOnDemand
from core.model.setup import ModelSetup
from core.progress import ProgressCallback, ProgressReporter
from db import Collection, Index, RunRecord

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
    def of_run(cls, path: str, status: str, run: RunRecord, duration_s: float, elapsed_s: float) -> BatchItem:
        """The item of a finished run, from its record's work counts (its results are not read)."""
        stats = run.stats
        return cls(
            path=path,
            status=status,
            run_id=run.id,
            frames=int(stats.get("recorded", 0)),
            analysed=int(stats.get("computed", 0)) + int(stats.get("cached", 0)),
            computed=int(stats.get("computed", 0)),
            matched=int(stats.get("matched", 0)),
            segments=int(stats.get("segments", 0)),
            duration_s=duration_s,
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
    done: RunRecord | None = None  # its run done before (the record only: a batch reads no results)
    reason: str = ""
    superseded: int | None = None  # a run done before, whose collection has changed since
    video_id: int | None = None  # its record in the database

    def matched(self, view: RunView, elapsed_s: float, *, how: str = "") -> BatchItem:
        """The item of this video once matched (``how``: how a run done before was brought up to
        date)."""
        item = BatchItem.of_run(self.path, "matched", view.run, view.video.duration_s, elapsed_s)
        return replace(item, reason=f"the collection changed since the run: {how}") if how else item

    def matched_from_video(self, view: RunView, elapsed_s: float) -> BatchItem:
        """The item of this video once matched from the video (a run done before that it brings
        up to date keeps its id: see :func:`core.matching.pipeline.finish_analysis`)."""
        again = self.superseded is not None and view.run.id == self.superseded
        return self.matched(view, elapsed_s, how="matched again from the video" if again else "")

    def needs_model(self, regions: RegionSettings | None) -> bool:
        """Whether this video will be matched (not skipped, and not only searched again)."""
        return self.skipped() is None and (self.superseded is None or regions is not None)

    def searched_again(self, index: Index, regions: RegionSettings | None) -> BatchItem | None:
        """The item of a video whose run was done before its collection changed, the run searched
        again from its cached frames (no decoding, no model: seconds, where matching an hour of
        video again decodes it all); None when it must be matched again: in region mode (new
        images' regions are in the frames' pixels), or with frames no longer cached."""
        if self.superseded is None or regions is not None:
            return None
        started = time.perf_counter()
        try:
            view = search_again(index, self.superseded)
        except CacheMissError as err:
            logger.info("%s: %s", self.path, err)
            return None
        return self.matched(view, time.perf_counter() - started, how="searched again from its cached frames")

    def skipped(self) -> BatchItem | None:
        """The item of a video that needs no work (unreadable, or done before); None otherwise."""
        if self.info is None:
            return BatchItem(self.path, "failed", reason=self.reason)
        if self.done is not None:
            return BatchItem.of_run(self.path, "done before", self.done, self.info.duration_s, 0.0)
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
    model: ModelOnDemand,
    sampling: Sampling | None,
    params: MatchParams | None,
    max_frames: int | None,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    regions: RegionSettings | None = None,
) -> Batch:
    """Check the collection, list and probe the videos, find those matched before, and load the
    model when a video is left to match (a batch done before never loads it)."""
    sampling = sampling or Sampling.auto()
    params = params or MatchParams()
    files = batch_files(paths)
    planned_with = model.setup
    coll = check_collection(index, collection, planned_with)
    if regions and (note := large_collection_note(coll.image_count, regions)):
        logger.warning(note)
    reporter = ProgressReporter("matching videos", "videos", len(files), progress, cancel)
    reporter.update(0)
    probed = [_probe(index, path) for path in files]
    plans = _find_done(index, probed, coll, planned_with, sampling, params, max_frames, regions)
    if not model.loaded and any(plan.needs_model(regions) for plan in plans):
        model.get(progress)
        if model.setup != planned_with:  # an int8 that auto chose failed its check here: other keys
            plans = _find_done(index, probed, coll, model.setup, sampling, params, max_frames, regions)
    return Batch(sampling, params, files, coll, plans, reporter)


def _probe(index: Index, path: str) -> Planned:
    """A video of the batch identified (by content hash, or by its unchanged file), or failed."""
    try:
        info = identify_video(index, path)
    except VideoOpenError as err:
        return Planned(path, None, reason=err.reason)
    return Planned(path, info, video_id=register_video(index, info).id)


def _find_done(
    index: Index,
    probed: list[Planned],
    coll: Collection,
    setup: ModelSetup,
    sampling: Sampling,
    params: MatchParams,
    max_frames: int | None,
    regions: RegionSettings | None,
) -> list[Planned]:
    """The probed videos with their runs done before against the collection as it is now."""
    wanted = run_parameters(setup, sampling, params, max_frames, regions)
    planned = []
    for plan in probed:
        if plan.video_id is None:
            planned.append(plan)
            continue
        run = index.find_run(
            video_id=plan.video_id,
            collection_id=coll.id,
            model_id=setup.model_id,
            params=wanted,
            statuses=("done",),
        )
        if run is not None and run.collection_changed:
            planned.append(replace(plan, superseded=run.id))
        else:
            planned.append(replace(plan, done=run))
    return planned


def match_batch(
    index: Index,
    paths: Iterable[str | os.PathLike],
    collection: str,
    extractor: FeatureExtractor | ModelOnDemand,
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
    ``extractor`` may be a :class:`ModelOnDemand`: a batch whose videos are all done never loads it.

    Raises:
        FileNotFoundError: a given path does not exist.
        db.NotFoundError / db.ModelMismatchError / EmptyCollectionError: collection problems
            (before any video is read).
        core.progress.Cancelled: ``cancel`` was set; finished videos and batches are kept.
    """
    model = ModelOnDemand.of(extractor)
    batch = start_batch(
        index, paths, collection, model, sampling, params, max_frames, progress, cancel, regions
    )
    items = []
    for number, plan in enumerate(batch.plans):
        batch.reporter.check_cancelled()
        item = plan.skipped() or plan.searched_again(index, regions)
        if item is None:
            summary = match_video(
                index,
                plan.path,
                batch.collection.name,
                model.get(progress),
                sampling=batch.sampling,
                params=batch.params,
                batch_size=batch_size,
                max_frames=max_frames,
                cancel=cancel,
                info=plan.info,
                regions=regions,
            )
            item = plan.matched_from_video(summary.view, summary.elapsed_s)
        items.append(item)
        batch.reporter.update(number + 1)
    return BatchReport(tuple(items), batch.reporter.elapsed_s)
