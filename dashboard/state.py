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

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from core import config
from core.features import FeatureExtractor
from core.runs import RunView, load_run
from dashboard import media
from dashboard.jobs import JobManager
from db import EmbeddingMatrix, Index

logger = logging.getLogger(__name__)


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


@st.cache_resource(show_spinner="Loading the model (once per server process)…", max_entries=3)
def _load_extractor(model: str, revision: str | None, device: str, precision: str) -> FeatureExtractor:
    logger.info("loading model %s (revision %s, %s, %s)", model, revision, device, precision)
    return FeatureExtractor.load(model, revision=revision, device=device, precision=precision)


def load_extractor(model_id: str | None = None) -> FeatureExtractor:
    """The model ``model_id`` (a collection's model id, a Hub id or a folder), loaded once.

    Raises:
        core.errors.ModelLoadError: the weights cannot be loaded; the message says what to do.
    """
    s = settings()
    model, revision = split_model_id(model_id or s.model_id)
    return _load_extractor(model, revision, s.device, s.precision)


def split_model_id(model_id: str) -> tuple[str, str | None]:
    """``"org/name@rev"`` → ``("org/name", "rev")``; folders and plain ids have no revision."""
    if "@" in model_id and not os.path.isdir(model_id) and not model_id.startswith(("/", ".", "~")):
        name, _, revision = model_id.rpartition("@")
        return name, revision or None
    return model_id, None


# -- model availability, without loading -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ModelStatus:
    model_id: str
    available: bool
    detail: str  # where the weights are, or why they are not usable
    fix: str  # what to do when not available ("" when available)


def model_status(model_id: str) -> ModelStatus:
    """Whether the weights of ``model_id`` are on this machine (local folder or Hugging Face cache).

    Cheap: looks at files only, never loads the model or touches the network.
    """
    model, revision = split_model_id(model_id)
    path = Path(model).expanduser()
    looks_local = path.exists() or model.startswith(("/", ".", "~")) or model.count("/") > 1
    if looks_local:
        if not path.is_dir():
            return ModelStatus(model_id, False, f"the folder {model} does not exist", _fix_folder())
        missing = [name for name in ("config.json",) if not (path / name).is_file()]
        has_weights = (path / "model.safetensors").is_file() or (
            path / "model.safetensors.index.json"
        ).is_file()
        if missing or not has_weights:
            what = ", ".join(missing + ([] if has_weights else ["model.safetensors"]))
            return ModelStatus(model_id, False, f"the folder {model} lacks {what}", _fix_folder())
        return ModelStatus(model_id, True, f"local folder {path.resolve()}", "")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return ModelStatus(model_id, False, "huggingface_hub is not installed", "pip install huggingface_hub")
    found = {}
    for name in ("config.json", "model.safetensors", "model.safetensors.index.json"):
        hit = try_to_load_from_cache(model, name, revision=revision)
        found[name] = hit if isinstance(hit, str) else None
    if found["config.json"] and (found["model.safetensors"] or found["model.safetensors.index.json"]):
        folder = Path(found["config.json"]).parent
        return ModelStatus(model_id, True, f"in the Hugging Face cache ({folder})", "")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    detail = "not in the local Hugging Face cache"
    if not offline:
        detail += " (it will be downloaded on first use if this machine can reach huggingface.co)"
    return ModelStatus(model_id, False, detail, _fix_hub(model))


def _fix_hub(model: str) -> str:
    return (
        f"To fix: on a machine with internet run `hf download {model}` once (it is cached under "
        "~/.cache/huggingface), then set `HF_HUB_OFFLINE=1` to use the cache without network; "
        "or point the dashboard at a local folder with `WEBSSL_MODEL=/path/to/folder` "
        "(config.json + model.safetensors) and restart it."
    )


def _fix_folder() -> str:
    return (
        "To fix: set `WEBSSL_MODEL` to a folder that holds config.json and model.safetensors (e.g. one "
        "written by save_pretrained()), or to a Hub id such as "
        f"`{config.DEFAULT_MODEL_ID}` after `hf download {config.DEFAULT_MODEL_ID}`; then restart the dashboard."
    )


# -- cached views --------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=6)
def _run_view(db_path: str, run_id: int, finished: str | None) -> RunView:
    return load_run(_open_index(db_path), run_id)


def get_run_view(run_id: int) -> RunView:
    """A stored run, loaded once while it is unchanged (runs are read-only once finished).

    Raises:
        db.NotFoundError: no such run.
    """
    index = get_index()
    run = index.get_run(run_id)
    if run.status == "running":  # still being written by a job: never cache a partial run
        return load_run(index, run_id)
    return _run_view(str(settings().db_path), int(run_id), run.finished)


@st.cache_resource(show_spinner="Loading the collection's embeddings…", max_entries=2)
def _embedding_matrix(db_path: str, collection_id: int, image_count: int, generation: int) -> EmbeddingMatrix:
    return _open_index(db_path).load_embeddings(collection_id)


def get_embedding_matrix(collection_id: int) -> EmbeddingMatrix:
    """A collection's embedding matrix, shared by all sessions until the collection changes."""
    index = get_index()
    coll = index.get_collection_by_id(collection_id)
    return _embedding_matrix(str(settings().db_path), coll.id, coll.image_count, data_generation())


_GENERATION = {"value": 0}


def data_generation() -> int:
    """A counter bumped whenever a job changed collections (for cache keys)."""
    return _GENERATION["value"]


def bump_generation() -> None:
    _GENERATION["value"] += 1


@st.cache_data(show_spinner=False, max_entries=48)
def video_frame(path: str, frame_index: int, time_s: float, rotation: int) -> np.ndarray:
    """One frame of a video (see :func:`dashboard.media.read_frame`), cached."""
    return media.read_frame(path, frame_index, time_s, rotation=rotation)


def get_thumbnails(image_ids) -> dict[int, bytes]:
    """JPEG thumbnails from the database (one query; never from the original files)."""
    ids = sorted({int(i) for i in image_ids if int(i) >= 0})
    return get_index().get_thumbnails(ids) if ids else {}
