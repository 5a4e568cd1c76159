"""The Python API: what the CLI and the dashboard do, from one import, for notebooks and scripts.

Example (``help(core.api.match)`` and the others have one each)::

    import core.api as webssl

    model = webssl.load_model()        # $WEBSSL_MODEL or facebook/webssl-dino300m-full2b-224
    maps = webssl.image_maps(model, "poster.jpg")                  # PCA + [CLS] similarity arrays
    webssl.index_folder("posters/", "posters", model=model)        # into the default database
    run = webssl.match("talk.mp4", "posters", model=model, threshold=0.6)
    run.segments_dataframe()                                       # pandas

A thin facade: every function re-exports or composes the core's own functions (the model in
:mod:`core.model`, pictures and videos in :mod:`core.visual`, collections and runs in
:mod:`core.matching`, the database :class:`db.Index`), and the CLI and the dashboard's jobs call
these compositions, so a notebook gets exactly what they get. Defaults come from the core's
parameter types (:data:`core.matching.params.DEFAULTS`, :mod:`core.config`), as theirs do.

Databases: ``db`` is an open :class:`db.Index`, a file path, or ``None`` for the default
(``$WEBSSL_DB`` or ``<data dir>/index.sqlite``). Models: ``model`` is a loaded
:class:`FeatureExtractor` (load once, pass it everywhere), a Hub id or folder, or ``None`` (a
collection's own model, else the default). Errors: :data:`USER_ERRORS` (each says what to do).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core import config
from core.errors import USER_ERRORS, InvalidArgumentError, WebSSLError
from core.matching.indexing import IndexReport, index_images
from core.matching.params import DEFAULTS, MatchParams
from core.matching.pipeline import RunSummary, match_video
from core.matching.regions import large_collection_note
from core.matching.runs import EmptyCollectionError, RunView
from core.matching.sampling import DEFAULT_SAMPLING, Sampling
from core.media.demo import DemoMedia, write_demo_media
from core.model.features import FeatureExtractor
from core.model.on_demand import ModelOnDemand
from core.model.preprocess import FULL_SHORT_SIDE
from core.model.source import CLI_FOLDER_OPTION
from core.progress import ProgressCallback, announce
from core.visual.figures import composite as _composite
from core.visual.figures import save_image_maps as save_maps
from core.visual.maps import ImageMaps
from core.visual.pca_video import render_pca_video
from core.visual.render import RenderResult
from db import Collection, Index, RunRecord, Segment

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULTS",
    "DEFAULT_SAMPLING",
    "USER_ERRORS",
    "Collection",
    "DemoMedia",
    "FeatureExtractor",
    "ImageFeatures",
    "ImageMaps",
    "Index",
    "IndexReport",
    "MatchParams",
    "MatchRun",
    "ModelOnDemand",
    "RenderResult",
    "Sampling",
    "SearchHit",
    "WebSSLError",
    "bound_model",
    "collections",
    "image_features",
    "image_maps",
    "index_folder",
    "layer_maps",
    "load_model",
    "load_run",
    "maps_figure",
    "match",
    "model_on_demand",
    "open_index",
    "read_image",
    "render_layer_video",
    "render_match_video",
    "render_pca_video",
    "runs",
    "save_maps",
    "search",
    "write_demo_media",
]

logger = logging.getLogger(__name__)

ImageLike = str | os.PathLike | np.ndarray | Image.Image
"""A file, a PIL image or an H×W×3 uint8 RGB array."""
DbLike = Index | str | os.PathLike | None
ModelLike = FeatureExtractor | str | os.PathLike | Callable[[], FeatureExtractor] | None
"""A loaded model, a Hub id or folder, a function that loads one (the dashboard's cached
loader), or ``None``: the collection's own model, else ``$WEBSSL_MODEL`` or the default."""


# -- the model --------------------------------------------------------------------------------
def load_model(
    model: str | os.PathLike | None = None,
    *,
    revision: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    folder_option: str = CLI_FOLDER_OPTION,
) -> FeatureExtractor:
    """Load a DINOv2-family model (Hub id or local folder) for every other function here.

    >>> model = load_model("facebook/webssl-dino300m-full2b-224", device="cpu")   # doctest: +SKIP
    >>> model.hidden_size, model.num_layers                                       # doctest: +SKIP
    (1024, 24)

    Args:
        model: Hub id (``org/name`` or ``org/name@revision``) or a folder written by
            ``save_pretrained``; default ``$WEBSSL_MODEL`` or ``facebook/webssl-dino300m-full2b-224``.
        revision: Hub branch, tag or commit.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``; default
            ``$WEBSSL_DEVICE`` or ``auto``.
        precision: ``fp32``, ``bf16``, ``fp16``, ``int8`` or ``auto``; default
            ``$WEBSSL_PRECISION`` or ``fp32``.
        batch_size: images per forward pass (default: 8 on a CPU, more on a GPU).
        folder_option: how your user passes a local folder (named in the error's fix).

    Raises:
        ModelLoadError: the weights cannot be had; the message says why and what to do.
    """
    return model_on_demand(
        model,
        revision=revision,
        device=device,
        precision=precision,
        batch_size=batch_size,
        folder_option=folder_option,
    ).get()


def model_on_demand(
    model: str | os.PathLike | None = None,
    *,
    revision: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    folder_option: str = CLI_FOLDER_OPTION,
) -> ModelOnDemand:
    """A model read from its config files now and loaded when its weights are first needed
    (arguments as :func:`load_model`). ``index_videos`` and ``match_batch`` take one: when every
    video is done already, the weights are never loaded.

    Raises:
        ModelLoadError: the model cannot be had (found now, before any work) or the options are
        invalid.
    """
    from core.model.loading import describe_model

    setup = describe_model(
        model if model is not None else config.default_model_id(),
        revision=revision,
        device=device or config.default_device(),
        precision=precision or config.default_precision(),
        folder_option=folder_option,
    )

    def load() -> FeatureExtractor:
        fx = FeatureExtractor.load(setup=setup, folder_option=folder_option)
        if batch_size:
            fx.batch_size = batch_size
        return fx

    return ModelOnDemand(setup, load)


def bound_model(
    collection: Collection | None, model: str | os.PathLike | None = None, revision: str | None = None
) -> str:
    """The model a job on ``collection`` uses: ``model`` if given, else the collection's own,
    else the default. A collection is bound to its model: a ``model`` that differs is refused
    here, before any time is spent loading it.

    Raises:
        db.ModelMismatchError: ``model`` is another model than the collection's.
    """
    from core.model.source import resolve_source
    from db import check_model

    if model is None and revision is None:
        return collection.model_id if collection is not None else config.default_model_id()
    label = resolve_source(model or config.default_model_id(), revision).label
    if collection is not None:
        check_model(collection, label)
    return label


def _model_for(
    collection: Collection | None,
    model: ModelLike,
    progress: ProgressCallback | None,
    **load: Any,
) -> FeatureExtractor:
    """``model`` as a loaded extractor (loading it, announced as a stage, when it is not one)."""
    if isinstance(model, FeatureExtractor):
        return model
    label = None if callable(model) else bound_model(collection, model, load.pop("revision", None))
    announce(progress, "loading model", "the first time takes a few seconds")
    return model() if callable(model) else load_model(label, **load)


# -- images -----------------------------------------------------------------------------------
def read_image(image: ImageLike) -> np.ndarray:
    """An image as H×W×3 uint8 RGB: a file (EXIF rotation applied, transparency over white), a
    PIL image, or an RGB array (returned as it is).

    >>> read_image("poster.jpg").shape                                            # doctest: +SKIP
    (480, 640, 3)

    Raises:
        ImageLoadError: the file is missing or not an image; ValueError: not an RGB uint8 array.
    """
    from core.media.images import load_image, to_rgb

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an H×W×3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}"
            )
        return image
    if isinstance(image, Image.Image):
        return to_rgb(image)
    return load_image(image).rgb


@dataclass(frozen=True, eq=False)
class ImageFeatures:
    """The features of one image.

    Attributes:
        cls: D float32, the global [CLS] embedding (final layer, after the final norm).
        patches: rows×cols×D float32 final-layer patch tokens (None when not asked for).
        layers: {layer number (1..L): rows×cols×D float32 patch tokens after the final norm}.
        grid: (rows, cols) of the patch grid; mode: "crop" or "full".
    """

    cls: np.ndarray
    patches: np.ndarray | None
    layers: dict[int, np.ndarray] = field(default_factory=dict)
    grid: tuple[int, int] = (0, 0)
    mode: str = "crop"


def image_features(
    model: FeatureExtractor,
    image: ImageLike,
    *,
    patches: bool = True,
    layers: Sequence[int] = (),
    mode: str = "crop",
    short_side: int = FULL_SHORT_SIDE,
) -> ImageFeatures:
    """[CLS] embedding, patch grid and chosen layers of one image (one forward pass).

    >>> f = image_features(model, "poster.jpg", layers=[4, -1])                   # doctest: +SKIP
    >>> f.cls.shape, f.patches.shape, sorted(f.layers)                            # doctest: +SKIP
    ((1024,), (16, 16, 1024), [4, 24])

    Args:
        model: from :func:`load_model`.
        image: a file, a PIL image or an RGB array.
        patches: also return the final layer's patch grid.
        layers: layer numbers 1..L (negative counts from the end: -1 is the last).
        mode, short_side: "crop" (the model's centre crop) or "full" (the whole image, short
            side ``short_side`` px).

    Raises:
        InvalidArgumentError: a layer number out of range, or a bad mode.
    """
    n = model.num_layers
    wanted = []
    for layer in layers:
        if not (-n <= int(layer) <= n) or int(layer) == 0:
            raise InvalidArgumentError(
                f"layer {layer} does not exist: the model has layers 1..{n} (or -1..-{n})"
            )
        wanted.append(int(layer) if layer > 0 else n + 1 + int(layer))
    prep = model.preprocessing.for_mode(mode, short_side)
    feats = model.embed([read_image(image)], patches=True, layers=bool(wanted), preprocessing=prep)
    assert feats.patches is not None
    return ImageFeatures(
        cls=feats.cls[0],
        patches=feats.patches[0] if patches else None,
        layers={i: feats.layers[i - 1, 0] for i in wanted} if feats.layers is not None else {},
        grid=tuple(feats.patches.shape[1:3]),
        mode=prep.mode,
    )


def image_maps(
    model: FeatureExtractor,
    image: ImageLike,
    *,
    mode: str = "crop",
    short_side: int = FULL_SHORT_SIDE,
    suppress_background: bool = False,
) -> ImageMaps:
    """PCA map and patch-to-[CLS] similarity map of an image, as arrays (:class:`ImageMaps`:
    ``pca``, ``pca_grid``, ``similarity``, ``similarity_rgb``, ``overlay``, ``image``).

    >>> maps = image_maps(model, "poster.jpg", mode="full")                      # doctest: +SKIP
    >>> maps.pca.shape, maps.similarity.shape                                    # doctest: +SKIP
    ((448, 672, 3), (32, 48))

    See :func:`core.visual.maps.image_maps` (this is it, for files and PIL images too).
    """
    from core.visual.maps import image_maps as maps_of

    return maps_of(
        model, read_image(image), mode=mode, short_side=short_side, suppress_background=suppress_background
    )


def layer_maps(
    model: FeatureExtractor,
    image: ImageLike,
    *,
    mode: str = "crop",
    short_side: int = FULL_SHORT_SIDE,
) -> list[np.ndarray]:
    """Every layer's PCA map (rows×cols×3 uint8, layer 1 first), colours fitted on the last.

    >>> grids = layer_maps(model, "poster.jpg"); len(grids)                        # doctest: +SKIP
    24
    """
    from core.visual.maps import layer_maps as grids_of

    return grids_of(model, read_image(image), mode=mode, short_side=short_side)


def maps_figure(maps: ImageMaps, *, title: str | None = None) -> Figure:
    """Image | PCA | similarity heat map with its colour bar, as a matplotlib Figure (shows
    inline in Jupyter; ``fig.savefig("maps.png")`` writes it).

    >>> maps_figure(image_maps(model, "poster.jpg"), title="poster")              # doctest: +SKIP
    """
    return _composite(maps, title=title)


# -- rendered videos --------------------------------------------------------------------------
def render_layer_video(
    model: FeatureExtractor,
    image: ImageLike,
    out: str | os.PathLike,
    **options: Any,
) -> RenderResult:
    """One frame per layer of an image, PCA colours fitted on the last layer (H.264 MP4).

    >>> render_layer_video(model, "poster.jpg", "layers.mp4", fps=2, gif=True).path  # doctest: +SKIP
    PosixPath('layers.mp4')

    ``options``: those of :func:`core.visual.layer_video.render_layers` (``fps``, ``mode``,
    ``short_side``, ``panel_size``, ``gif``, ``progress``, ``cancel``).
    """
    from core.visual.layer_video import render_layers

    return render_layers(model, read_image(image), out, **options)


def render_match_video(
    run: MatchRun | RunView | int,
    out: str | os.PathLike,
    *,
    db: DbLike = None,
    threshold: float | None = None,
    **options: Any,
) -> RenderResult:
    """A match run as video: each frame beside its best matching image (no model needed).

    >>> render_match_video(run, "run.mp4", threshold=0.7)                         # doctest: +SKIP

    Args:
        run: a :class:`MatchRun`, a :class:`RunView` or a run id (read from ``db``).
        out: the .mp4 to write.
        db: where the thumbnails (and a run given by id) come from.
        threshold: see the run with this threshold (default: the run's own).
        options: ``max_frames``, ``fps``, ``panel_height``, ``progress``, ``cancel`` of
            :func:`core.visual.match_video.render_match_video`.
    """
    from core.visual.match_video import render_match_video as render

    with _opened(db) as index:
        view = _view_of(index, run).relabel(threshold=threshold)
        return render(view, index.get_thumbnails, out, **options)


# -- the database -----------------------------------------------------------------------------
def open_index(db: str | os.PathLike | None = None, *, write: bool = False, create: bool = False) -> Index:
    """The index database (default: ``$WEBSSL_DB`` or ``<data dir>/index.sqlite``).

    Only ``create`` makes a new file; without ``write`` or ``create`` it is opened read-only.

    >>> with open_index("index.sqlite") as index: index.list_collections()       # doctest: +SKIP

    Raises:
        WebSSLError: there is no database file at that path (and ``create`` is not set).
    """
    path = Path(db or config.default_db_path())
    if not create and str(path) != ":memory:" and not path.exists():
        raise WebSSLError(
            f"No index database at {path}: index some images first (python -m core index PATH "
            "--collection NAME), or point --db / WEBSSL_DB at an existing file."
        )
    return Index(path, readonly=not (write or create))


@contextlib.contextmanager
def _opened(db: DbLike, *, write: bool = False, create: bool = False) -> Iterator[Index]:
    """``db`` as an open index: one given is used (and left open), a path is opened and closed."""
    if isinstance(db, Index):
        yield db
        return
    with open_index(db, write=write, create=create) as index:
        yield index


def collections(*, db: DbLike = None) -> list[Collection]:
    """The collections of a database (name, model_id, image_count, failure_count, ...)."""
    with _opened(db) as index:
        return index.list_collections()


def runs(*, db: DbLike = None, limit: int = 20) -> list[RunRecord]:
    """The stored match runs, newest first."""
    with _opened(db) as index:
        return index.list_runs(limit=limit)


def index_folder(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    collection: str,
    *,
    db: DbLike = None,
    model: ModelLike = None,
    revision: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    **options: Any,
) -> IndexReport:
    """Index image files and folders (recursively) into a collection, created if new.

    Incremental: files already indexed are skipped, and a run that was stopped resumes.

    >>> report = index_folder("posters/", "posters", model=model)                  # doctest: +SKIP
    >>> report.summary()                                                          # doctest: +SKIP
    'posters: 12 added, 0 already indexed, 1 failed'

    Args:
        paths: files and/or folders.
        collection: its name.
        db: the database (created if missing).
        model: see :data:`ModelLike`; an existing collection keeps its own model.
        revision, device, precision, batch_size: for loading ``model`` (see :func:`load_model`).
        progress, cancel: progress callback and cancellation event.
        options: further options of :func:`core.matching.indexing.index_images` (``recursive``).

    Raises:
        FileNotFoundError: a path does not exist; db.ModelMismatchError: the collection was
        built with another model; ModelLoadError: the model cannot be loaded.
    """
    from core.media.images import iter_image_files

    targets = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    iter_image_files(targets)  # a missing path fails before the model loads
    with _opened(db, create=True) as index:
        existing = index.find_collection(collection)
        if not isinstance(model, FeatureExtractor) and not callable(model):
            model = bound_model(existing, model, revision)  # a different model is refused before any work
        load = functools.partial(
            _model_for, existing, model, progress, device=device, precision=precision, batch_size=batch_size
        )
        # loaded only when there is something to embed: indexing a folder again needs no model
        return index_images(
            index,
            collection,
            targets,
            model if isinstance(model, FeatureExtractor) else load,
            batch_size=batch_size,
            progress=progress,
            cancel=cancel,
            **options,
        )


# -- match runs -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MatchRun:
    """A stored match run seen with one threshold, gap and minimum duration (its own, or
    those of :meth:`relabel`), and what the matching did when it was just made.

    >>> run.segments_dataframe()                                                  # doctest: +SKIP
          image  start_s  end_s  peak_score ...
    >>> run.relabel(threshold=0.7).frames_dataframe().matched.sum()               # doctest: +SKIP
    """

    view: RunView
    summary: RunSummary | None = None  # the work counts and timing of a run made by :func:`match`

    @property
    def run_id(self) -> int:
        return self.view.run.id

    @property
    def params(self) -> MatchParams:
        return self.view.params

    @property
    def segments(self) -> tuple[Segment, ...]:
        """The run's segments (:class:`db.Segment`) under :attr:`params`."""
        return self.view.segments

    @property
    def complete(self) -> bool:
        return self.view.complete

    @property
    def stats(self) -> dict:
        """The run's work counts, with ``recorded``, ``matched`` and ``segments`` under :attr:`params`."""
        return self.view.stats

    @property
    def frames_recorded(self) -> int:
        return self.stats["recorded"]

    @property
    def matched_frames(self) -> int:
        """Frames whose best score reaches :attr:`params`' threshold."""
        return self.stats["matched"]

    def image_names(self) -> dict[int, str]:
        """``image id -> file name`` of every image in the run's results (and regions)."""
        return self.view.image_names(self.view.scored_images()[0])

    def relabel(
        self,
        threshold: float | None = None,
        gap_tolerance_s: float | None = None,
        min_duration_s: float | None = None,
    ) -> MatchRun:
        """The same run with another threshold, gap or minimum duration (from stored scores,
        no model)."""
        return MatchRun(self.view.relabel(threshold, gap_tolerance_s, min_duration_s))

    def frames_dataframe(self) -> pd.DataFrame:
        """One row per frame: best image and score, matched, inherited (see :mod:`core.matching.tables`)."""
        from core.matching.tables import frames_table

        return frames_table(self.view)

    to_dataframe = frames_dataframe

    def matches_dataframe(self) -> pd.DataFrame:
        """One row per frame and rank: the top-k of every frame."""
        from core.matching.tables import matches_table

        return matches_table(self.view)

    def segments_dataframe(self) -> pd.DataFrame:
        """One row per segment: image, start, end, duration, peak and mean score."""
        from core.matching.tables import segments_table

        return segments_table(self.view)

    def to_dict(self) -> dict:
        """The run as the JSON export has it (see README, Exports)."""
        from core.matching.export import run_to_dict

        return run_to_dict(self.view)

    def write_json(self, path: str | os.PathLike) -> Path:
        from core.matching.export import write_json

        return write_json(self.view, path)

    def write_csv(self, path: str | os.PathLike) -> Path:
        from core.matching.export import write_csv

        return write_csv(self.view, path)

    def __repr__(self) -> str:
        p = self.params
        return (
            f"<MatchRun {self.run_id}: {self.frames_recorded} frames, {self.matched_frames} matched "
            f"≥ {p.threshold:g}, {len(self.segments)} segments ({self.view.run.status})>"
        )


def _view_of(index: Index, run: MatchRun | RunView | int) -> RunView:
    from core.matching.runs import load_run as load

    if isinstance(run, MatchRun):
        return run.view
    if isinstance(run, RunView):
        return run
    return load(index, int(run))


def match(
    video: str | os.PathLike,
    collection: str,
    *,
    db: DbLike = None,
    model: ModelLike = None,
    sampling: Sampling | None = None,
    params: MatchParams | None = None,
    threshold: float | None = None,
    top_k: int | None = None,
    gap_tolerance_s: float | None = None,
    min_duration_s: float | None = None,
    max_frames: int | None = None,
    revision: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    **options: Any,
) -> MatchRun:
    """Match a video's frames against a collection; the run is stored and returned.

    >>> run = match("talk.mp4", "posters", model=model, threshold=0.6, top_k=5)   # doctest: +SKIP
    >>> run.segments_dataframe()[["image", "start_s", "end_s", "peak_score"]]     # doctest: +SKIP

    Args:
        video: any file FFmpeg reads.
        collection: the collection's name.
        db: the database.
        model: see :data:`ModelLike`; default: the collection's own model, loaded with
            ``precision`` (default: ``auto``, as ``python -m core match``).
        sampling: which frames get a model pass (default: :data:`DEFAULT_SAMPLING`, change-driven
            by certainty); e.g. ``Sampling.every()``, ``Sampling.rate(2)``.
        params: all matching options at once (default :data:`DEFAULTS`); ``threshold``,
            ``top_k``, ``gap_tolerance_s`` and ``min_duration_s`` override single ones.
        max_frames: stop after this many decoded frames.
        revision, device, precision, batch_size: for loading ``model`` (see :func:`load_model`).
        progress, cancel: progress callback and cancellation event.
        options: further options of :func:`core.matching.pipeline.match_video`.

    Raises:
        VideoOpenError: the video cannot be read; db.NotFoundError: no such collection;
        db.ModelMismatchError: ``model`` is not the collection's; EmptyCollectionError.
    """
    params = (params or DEFAULTS).updated(
        threshold=threshold, top_k=top_k, gap_tolerance_s=gap_tolerance_s, min_duration_s=min_duration_s
    )
    from core.media.video import probe_video

    with _opened(db, write=True) as index:
        coll = index.get_collection(collection)  # these fail before the model loads
        probe_video(video, compute_hash=False)
        regions = options.get("regions")
        if regions and (note := large_collection_note(coll.image_count, regions)):
            logger.warning(note)
        fx = _model_for(
            coll,
            model,
            progress,
            revision=revision,
            device=device,
            precision=precision or config.MATCH_PRECISION,
            batch_size=batch_size,
        )
        summary = match_video(
            index,
            video,
            coll.name,
            fx,
            sampling=sampling,
            params=params,
            batch_size=batch_size,
            max_frames=max_frames,
            progress=progress,
            cancel=cancel,
            **options,
        )
    return MatchRun(summary.view, summary)


def load_run(
    run_id: int,
    *,
    db: DbLike = None,
    threshold: float | None = None,
    gap_tolerance_s: float | None = None,
    min_duration_s: float | None = None,
) -> MatchRun:
    """A stored run, seen with its own options or those given (no model).

    >>> load_run(1, threshold=0.7).segments_dataframe()                           # doctest: +SKIP

    Raises:
        db.NotFoundError: no such run.
    """
    with _opened(db) as index:
        return MatchRun(_view_of(index, run_id)).relabel(threshold, gap_tolerance_s, min_duration_s)


# -- search -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SearchHit:
    """One image of a collection found for a query: rank 1 is the most similar."""

    rank: int
    image_id: int
    image: str  # the file name
    path: str
    score: float  # cosine similarity of the [CLS] embeddings


def search(
    image: ImageLike,
    collection: str,
    *,
    db: DbLike = None,
    model: ModelLike = None,
    k: int = DEFAULTS.top_k,
    revision: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
) -> list[SearchHit]:
    """The ``k`` images of a collection most similar to a query image, best first.

    >>> hits = search("query.jpg", "posters", model=model, k=3)                   # doctest: +SKIP
    >>> [(h.image, round(h.score, 2)) for h in hits]                              # doctest: +SKIP
    [('poster-12.jpg', 0.91), ('poster-3.jpg', 0.55), ('poster-7.jpg', 0.52)]

    Raises:
        ImageLoadError: the query cannot be read; db.NotFoundError: no such collection;
        db.ModelMismatchError: ``model`` is not the collection's; EmptyCollectionError.
    """
    from core.matching.search import open_search, search_images
    from db import check_model

    if k < 1:
        raise InvalidArgumentError(f"k must be ≥ 1, got {k}")
    query = read_image(image)  # a bad file fails before anything is opened or loaded
    with _opened(db) as index:
        coll = index.get_collection(collection)
        vectors = open_search(index, coll)  # exact, or the approximate index of a large collection
        if not len(vectors):
            raise EmptyCollectionError(f"Collection {coll.name!r} has no images yet.")
        fx = _model_for(
            coll, model, None, revision=revision, device=device, precision=precision, batch_size=batch_size
        )
        check_model(coll, fx.model_id, fx.preprocessing.to_json(), fx.hidden_size)
        hits = search_images(fx, vectors, [query], k)[0]
        records = index.get_images([h.image_id for h in hits])
    return [
        SearchHit(rank, h.image_id, records[h.image_id].name, records[h.image_id].path, h.score)
        for rank, h in enumerate(hits, start=1)
    ]
