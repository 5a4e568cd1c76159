"""Runs brought up to date after their collection changed.

A done run searched its collection as it was; images added, replaced or removed since make it
out of date (:func:`core.matching.runs.out_of_date_runs`). Most runs are searched again from
their cached frames (:func:`core.matching.runs.search_again`: no video, no model). A region run
(a new image's regions are in the frames' pixels), or one whose frames are no longer cached,
needs its video: it is matched again with its own options, and the new results take its place
under its id (:func:`core.matching.pipeline.finish_analysis`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import VideoOpenError
from core.matching.params import MatchParams
from core.matching.pipeline import RunSummary, match_video
from core.matching.regions import RegionSettings
from core.matching.runs import CacheMissError, IncompleteRunError, out_of_date_runs, search_again
from core.matching.sampling import Sampling
from core.model.features import FeatureExtractor
from core.progress import ProgressCallback, ProgressReporter
from db import Index, RunRecord

logger = logging.getLogger(__name__)

ModelLoader = Callable[[str, str], FeatureExtractor]
"""``load(model_id, precision)``: the model a run is matched again with."""


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What :func:`refresh_runs` did with one run."""

    run_id: int
    video_path: str
    status: str  # "searched again", "matched again" (from the video), "needs the video" (a region
    # run), "frames not cached" or "video unreadable"
    reason: str = ""


def refresh_runs(
    index: Index,
    collection: str | None = None,
    *,
    load: ModelLoader | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> list[Refreshed]:
    """Every done run (of ``collection``) whose collection has changed since it searched it,
    brought up to date from its cached frames: no video file is read, so videos on a drive that
    is not mounted are brought up to date too. A region run, or one whose frames are no longer
    cached, needs its video: with ``load``, it is matched again (:func:`match_run_again`, each
    model and precision loaded once); without, it is listed with the command that does it.

    Raises:
        db.NotFoundError: no such collection.
        core.errors.ModelLoadError: ``load`` could not load a run's model.
        core.progress.Cancelled: ``cancel`` was set; the runs done before it stay done.
    """
    coll_id = index.get_collection(collection).id if collection else None
    stale = out_of_date_runs(index, coll_id)
    reporter = ProgressReporter("bringing runs up to date", "runs", len(stale), progress, cancel)
    models: dict[tuple[str, str], FeatureExtractor] = {}

    def from_video(run: RunRecord, status: str, why: str) -> Refreshed:
        if load is None:
            command = (
                f"runs --refresh --videos, or: match {run.video_path} --collection {run.collection_name}"
            )
            command += " --regions" if run.params.get("regions") else ""
            return Refreshed(run.id, run.video_path, status, f"{why}: {command}")
        key = (index.get_collection_by_id(run.collection_id).model_id, run_precision(run))
        if key not in models:
            models[key] = load(*key)
        try:
            match_run_again(index, run, models[key], progress=progress, cancel=cancel)
        except VideoOpenError as err:
            return Refreshed(run.id, run.video_path, "video unreadable", err.reason)
        return Refreshed(run.id, run.video_path, "matched again")

    out = []
    for number, run in enumerate(stale):
        reporter.check_cancelled()
        if run.params.get("regions"):
            out.append(from_video(run, "needs the video", "a region run"))
        else:
            try:
                search_again(index, run.id, cancel=cancel)
            except CacheMissError as err:
                logger.info("%s", err)
                out.append(from_video(run, "frames not cached", "its frames are no longer cached"))
            else:
                out.append(Refreshed(run.id, run.video_path, "searched again"))
        reporter.update(number + 1)
    return out


def match_run_again(
    index: Index,
    run: RunRecord,
    extractor: FeatureExtractor,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RunSummary:
    """Match a done run's video again with the run's own options (sampling, threshold, top-k,
    segments, frame limit, regions) against its collection as it is now. With the model in the
    run's precision (:func:`run_precision`), the new results take the run's place.

    Raises:
        IncompleteRunError: the run is not done, or has no collection.
        VideoOpenError: the video file cannot be opened (moved, or on a drive that is not mounted).
    """
    if not run.complete or run.collection_name is None:
        raise IncompleteRunError(
            f"Run {run.id} is {run.status}: only a done run with a collection is matched again."
        )
    p = run.params
    return match_video(
        index,
        run.video_path,
        run.collection_name,
        extractor,
        sampling=Sampling.from_dict(p["sampling"]),
        params=MatchParams.from_dict(p),
        max_frames=p.get("max_frames"),
        regions=RegionSettings.from_dict(p["regions"]) if p.get("regions") else None,
        progress=progress,
        cancel=cancel,
    )


def run_precision(run: RunRecord) -> str:
    """The precision a run's frames were embedded in (what :func:`match_run_again` loads)."""
    return str(run.params.get("precision", "fp32"))
