"""Process-wide resources of the dashboard and the settings they come from.

- :func:`settings`: where the database and data live and which model to use, from the
  environment (``WEBSSL_DB``, ``WEBSSL_MODEL``, ``WEBSSL_DATA_DIR``, ``WEBSSL_DEVICE``,
  ``WEBSSL_PRECISION``; see :mod:`core.config`), read on every rerun (cheap);
- :func:`get_index`: one :class:`db.Index` per database file for the pages' reads and small
  writes (its methods hold a lock, so Streamlit's script threads may share it);
- :func:`load_extractor`: a model, loaded once per process per (model, device, precision);
- :func:`get_jobs`: the background :class:`~dashboard.jobs.JobManager`;
- cached views of runs, embedding matrices and video frames.

:func:`model_status` checks cheaply, without loading anything, whether a model's weights are
at hand.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st

from core import config
from core.lazy import LazyModule
from core.model.source import ModelAvailability, model_availability, split_label
from core.visual.colours import image_rgb
from dashboard import media
from dashboard.jobs import JobManager
from db import Collection, Index, NotFoundError, RunRecord

if TYPE_CHECKING:
    from core.matching.runs import RunView
    from core.matching.search import VectorSearch
    from core.model.features import FeatureExtractor
    from core.model.on_demand import ModelOnDemand
    from core.model.setup import ModelSetup

logger = logging.getLogger(__name__)

# What only some pages use is imported on first use: the server's first page (Home) then imports
# what it shows and no more (0.2-0.3 s less on 2 cores); the warm-up thread imports the rest
# right after it (dashboard.warmup).
run_views: Any = LazyModule("core.matching.runs")
vector_search: Any = LazyModule("core.matching.search")
model_features: Any = LazyModule("core.model.features")
model_loading: Any = LazyModule("core.model.loading")
model_on_demand: Any = LazyModule("core.model.on_demand")
charts: Any = LazyModule("dashboard.charts")

FOLDER_OPTION = (
    "the Model box of a new collection on the Collections page (type the folder's path), or "
    "WEBSSL_MODEL=/path/to/folder when you start the dashboard (./run)"
)
"""How a dashboard user passes a local model folder (in the fix of every model error)."""


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    db_path: Path
    model_id: str
    device: str
    precision: str
    workers: int

    @property
    def renders_dir(self) -> Path:
        return self.data_dir / "renders"


def settings() -> Settings:
    """The dashboard's settings from the environment (see :mod:`core.config`)."""
    try:
        workers = max(1, int(os.environ.get("WEBSSL_DASHBOARD_WORKERS", "1")))
    except ValueError:
        logger.warning("WEBSSL_DASHBOARD_WORKERS is not a number; using 1 worker")
        workers = 1
    return Settings(
        data_dir=config.data_dir(),
        db_path=config.default_db_path(),
        model_id=config.default_model_id(),
        device=config.default_device(),
        precision=config.default_precision(),
        workers=workers,
    )


@st.cache_resource(show_spinner=False)
def _open_index(path: str) -> Index:
    logger.info("opening index %s", path)
    return Index(path)


def get_index() -> Index:
    """The shared index of the database in use (opened once per process)."""
    return _open_index(str(settings().db_path))


@st.cache_resource(show_spinner=False)
def _job_manager(workers: int) -> JobManager:
    return JobManager(workers=workers)


def get_jobs() -> JobManager:
    """The process's background job manager."""
    return _job_manager(settings().workers)


@st.cache_resource(show_spinner=False, max_entries=3)  # thread-safe: jobs load models too
def _load_extractor(model: str, revision: str | None, device: str, precision: str) -> FeatureExtractor:
    logger.info("loading model %s (revision %s, %s, %s)", model, revision, device, precision)
    return model_features.FeatureExtractor.load(
        model, revision=revision, device=device, precision=precision, folder_option=FOLDER_OPTION
    )


def load_extractor(model_id: str | None = None) -> FeatureExtractor:
    """The model ``model_id`` (a collection's model id, a Hub id or a folder), loaded once.

    Raises:
        core.errors.ModelLoadError: the weights cannot be loaded; the message says what to do.
    """
    with st.spinner("Loading the model (once per server process)…"):  # shown only if it takes time
        return extractor_loader(model_id)()


def extractor_loader(model_id: str | None = None) -> Callable[[], FeatureExtractor]:
    """:func:`load_extractor` for a background job (the ``model`` of :func:`core.api.match` and
    :func:`core.api.index_folder`): the settings are read now, the model is loaded (once per
    process) when the job calls it."""
    s = settings()
    return functools.partial(model_loader(), model_id or s.model_id, s.precision)


def model_loader() -> Callable[[str, str], FeatureExtractor]:
    """``load(model_id, precision)`` for a background job (runs matched again in their own
    precision: :func:`core.matching.refresh.refresh_runs`): the device is read now; each model
    is loaded once per process."""
    device = settings().device

    def load(model_id: str, precision: str) -> FeatureExtractor:
        model, revision = split_label(model_id)
        return _load_extractor(model, revision, device, precision)

    return load


@st.cache_resource(show_spinner=False, max_entries=3)
def _describe_model(model: str, revision: str | None, device: str, precision: str) -> ModelSetup:
    return model_loading.describe_model(
        model, revision=revision, device=device, precision=precision, folder_option=FOLDER_OPTION
    )


def on_demand_loader(model_id: str | None = None) -> Callable[[], ModelOnDemand]:
    """:func:`extractor_loader` for a job whose videos may all be done already (index videos,
    match a folder): the settings are read now; in the job, the model is described from its
    config files, and its weights are loaded (once per process) only when a video is left to embed."""
    s = settings()
    model, revision = split_label(model_id or s.model_id)

    def on_demand() -> ModelOnDemand:
        setup = _describe_model(model, revision, s.device, s.precision)
        load = functools.partial(_load_extractor, model, revision, s.device, s.precision)
        return model_on_demand.ModelOnDemand(setup, load)

    return on_demand


def model_status(model_id: str) -> ModelAvailability:
    """Whether the weights of ``model_id`` are on this machine, and the fix if not (no loading)."""
    return model_availability(model_id, folder_option=FOLDER_OPTION)


# -- cached views --------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=6)
def _run_view(db_path: str, run_id: int, stored: tuple[str | None, int]) -> RunView:
    # paths of best matches only: a long run's top-k names 100k images (see with_paths)
    return run_views.load_run(_open_index(db_path), run_id, all_paths=False)


def get_run_view(run_id: int) -> RunView:
    """A stored run, loaded once while it is unchanged (runs are read-only once finished), with its
    record as it is now (its collection may have been renamed or changed since).

    Raises:
        db.NotFoundError: no such run.
    """
    index = get_index()
    run = index.get_run(run_id)
    if run.status == "running":  # still being written by a job: never cache a partial run
        return run_views.load_run(index, run_id, all_paths=False)
    view = _run_view(str(settings().db_path), int(run_id), _stored(run))
    return view if view.run == run else replace(view, run=run)


def _stored(run: RunRecord) -> tuple[str | None, int]:
    """What a cached run view is keyed by, beside its id: when the run finished and its revision
    (bumped when its results change in place, in this process or another: searched again,
    resumed, an image removed from its collection)."""
    return run.finished, run.revision


_READ_AHEAD_ERRORS = (NotFoundError, sqlite3.Error, OSError)
"""What a read-ahead may meet (a run or image deleted meanwhile, a locked or missing file): it
logs them only, as the warm-up thread has no page to report to."""


def _first_collection(index: Index) -> Collection | None:
    """The collection Browse shows first in a new session (:func:`dashboard.widgets.pick_collection`:
    the first by name), or None when there is none."""
    collections = index.list_collections()
    return collections[0] if collections else None


def preload_newest_run() -> int | None:
    """Load the run the Match page shows first (the newest, once finished) into the run cache,
    so that opening it does not wait for SQLite (0.28 s cold for a 2-hour run). Called by the
    server's warm-up thread, where there is no page to report to: a failure is logged only.

    Returns:
        The run's id, or None when there was none to load.
    """
    try:
        runs = get_index().list_runs(limit=1)
        if not runs or runs[0].status == "running":
            return None
        get_run_view(runs[0].id)
    except _READ_AHEAD_ERRORS as err:
        logger.warning("could not preload the newest run: %s", err)
        return None
    logger.info("preloaded run #%d", runs[0].id)
    return runs[0].id


def preload_collection_search() -> int | None:
    """Open the search of the collection Browse shows first, when it has an approximate index
    file, and run one search through it, so that the first neighbours search does not wait for
    the file (0.38 s to open it and 0.89 s for the first search from a cold page cache at 1M
    images, 0.1 s for the next). A collection without one (small, or large with no file built
    yet) is left alone: exact search would hold its whole matrix in memory for a search that
    may never come. Called by the server's warm-up thread: a failure is logged only.

    Returns:
        The collection's id, or None when there was none to open.
    """
    try:
        index = get_index()
        coll = _first_collection(index)
        if coll is None or not vector_search.has_index_file(index, coll):
            return None
        search = get_collection_search(coll.id)
        dim = int(coll.embed_dim)
        probe = np.full((1, dim), dim**-0.5, np.float32)  # a unit vector: any query walks the top
        search.top_k(probe, 1)
    except _READ_AHEAD_ERRORS as err:
        logger.warning("could not open the collection's search ahead: %s", err)
        return None
    logger.info("opened the search of collection %r ahead", coll.name)
    return coll.id


def preload_grid_previews() -> int:
    """Make the square thumbnails of the first page Browse shows (the first collection's first
    images by path) into the preview cache. Their first making also loaded OpenCV and its JPEG
    code from disk: Browse's first visit took 1.0–1.4 s from a cold page cache, 0.25 s of it in
    the first encodes. Called by the server's warm-up thread: a failure is logged only.

    Returns:
        How many previews were made.
    """
    try:
        index = get_index()
        coll = _first_collection(index)
        if coll is None:
            return 0
        ids = [r.id for r in index.list_images(coll.id, offset=0, limit=media.GRID_PAGE_SIZE)]
        thumbs = index.get_thumbnails(ids)
    except _READ_AHEAD_ERRORS as err:
        logger.warning("could not make the first grid's previews ahead: %s", err)
        return 0
    for image_id in ids:
        square_preview(thumbs.get(image_id))
    return len(ids)


@st.cache_resource(show_spinner="Opening the collection for search…", max_entries=2)
def _collection_search(db_path: str, collection_id: int, content_version: int) -> VectorSearch:
    index = _open_index(db_path)
    return vector_search.open_search(index, index.get_collection_by_id(collection_id))


def get_collection_search(collection_id: int) -> VectorSearch:
    """A collection ready to search (exact, or its approximate index when large), shared by all
    sessions until the collection changes."""
    index = get_index()
    coll = index.get_collection_by_id(collection_id)
    return _collection_search(str(settings().db_path), coll.id, coll.content_version)


def collections_changed() -> None:
    """Let go of the searches opened before images were added, removed or replaced (the next
    search opens the collection as it is now anyway: the cache is keyed by its content version;
    runs whose results lost a removed image have a new revision)."""
    _collection_search.clear()


@st.cache_resource(show_spinner=False, max_entries=6)
def _top_images(
    run_id: int, stored: tuple[str | None, int], frames: int, top_n: int, _view: RunView
) -> np.ndarray:
    return charts.top_images(*_view.scored_images(), top_n=top_n)


def run_top_images(view: RunView, top_n: int) -> np.ndarray:
    """The run's ``top_n`` images by peak score (threshold-independent: computed once per run)."""
    return _top_images(view.run.id, _stored(view.run), len(view.results), top_n, view)


def with_paths(view: RunView, image_ids) -> RunView:
    """``view`` knowing the paths of ``image_ids`` too (fetched once, in one query)."""
    missing = view.missing_paths(image_ids)
    return view.with_paths(get_index().image_paths(missing)) if missing else view


@st.cache_data(show_spinner=False, max_entries=48)
def video_frame(path: str, frame_index: int, time_s: float) -> np.ndarray:
    """One frame of a video (see :func:`dashboard.media.read_frame`), cached."""
    return media.read_frame(path, frame_index, time_s)


@st.cache_data(show_spinner="Finding where the image is in the frame…", max_entries=32)
def _explained_frame(
    db_path: str, run_id: int, stored: tuple[str | None, int], frame: int, image_id: int
) -> np.ndarray:
    from core.visual.explain import explain_frame, overlay_frame

    view = get_run_view(run_id)
    model = view.run.model_id
    if view.run.collection_id is not None:
        model = get_index().get_collection_by_id(view.run.collection_id).model_id
    explanation = explain_frame(
        load_extractor(model), view, frame, get_index().get_thumbnails, image_id=image_id
    )
    return overlay_frame(explanation)


def explained_frame(run_id: int, frame: int, image_id: int) -> np.ndarray:
    """The frame with the heat map of where ``image_id`` fits and the region box (see
    :mod:`core.visual.explain`); computed with the run's model once per frame and image.

    Raises:
        core.errors.ModelLoadError, InvalidArgumentError, VideoOpenError.
    """
    run = get_index().get_run(run_id)
    return _explained_frame(str(settings().db_path), int(run_id), _stored(run), int(frame), int(image_id))


def get_thumbnails(image_ids) -> dict[int, bytes]:
    """JPEG thumbnails from the database (one query; never from the original files)."""
    ids = sorted({int(i) for i in image_ids if int(i) >= 0})
    return get_index().get_thumbnails(ids) if ids else {}


@st.cache_data(show_spinner=False, max_entries=4096)
def square_preview(jpeg: bytes | None) -> bytes:
    """A grid's square thumbnail (:func:`dashboard.media.square_jpeg`), made once per server."""
    return media.square_jpeg(jpeg)


@st.cache_data(show_spinner=False, max_entries=2048)
def _preview(image_id: int, db_path: str) -> bytes | None:
    jpeg = _open_index(db_path).get_thumbnails([image_id]).get(image_id)
    return media.small_jpeg(jpeg, frame=image_rgb(image_id)) if jpeg else None


def previews(image_ids) -> dict[int, bytes]:
    """Small JPEG previews (64 px) of images framed in each image's colour, for tables: a few KB
    each, made once per image."""
    db_path = str(settings().db_path)
    found = {int(i): _preview(int(i), db_path) for i in dict.fromkeys(image_ids) if int(i) >= 0}
    return {i: jpeg for i, jpeg in found.items() if jpeg}
