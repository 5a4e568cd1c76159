"""A batch of videos on a Ray cluster: workers decode, embed and search, this process alone writes
SQLite.

Each worker is a Ray actor that loads the model once, receives the collection's embeddings (and,
in region mode, its thumbnails) once, and analyses videos with the loop a run on one machine uses
(:func:`core.matching.analysis.analyse_frames`): the same sampling, by certainty too (the planner
hears every analysed frame's scores), the same batching, preprocessing and region search. The
driver (this process) probes the videos, skips those matched before, sends the others out with
their cached frames, and for each video as it comes back caches the computed embeddings and stores
the run and its results: SQLite has one writer, so nothing needs a network file system or a
database server, and a killed batch resumes like a local one (frames cached before are not
embedded again). Workers search the collection exactly, in memory (4 KB an image at d = 1024:
400 MB for 100,000 images, shared by the workers of a node).

Ray is optional (``pip install 'webssl-lens[cluster]'``); it is imported only here, when a batch
asks for it. ``address=None`` starts a local Ray instance on this machine's cores; ``"auto"``
joins the cluster this machine belongs to; ``"ray://host:10001"`` a remote one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import WebSSLError
from core.matching.analysis import Analysis, analyse_frames
from core.matching.batch import BatchItem, BatchReport, start_batch
from core.matching.params import MatchParams
from core.matching.pipeline import finish_analysis, register_video, run_parameters, start_run
from core.matching.regions import RegionSearch, RegionSettings
from core.matching.runs import RunView
from core.matching.sampling import Sampling
from core.matching.search import ExactSearch
from core.media.video import VideoInfo
from core.model.features import FeatureExtractor
from core.model.on_demand import ModelOnDemand
from core.model.setup import ModelSetup
from core.progress import ProgressCallback
from db import EmbeddingMatrix, Index

logger = logging.getLogger(__name__)


class RayMissingError(WebSSLError):
    """A cluster batch was asked for, but Ray is not installed."""


def import_ray():
    """The ``ray`` module, or a clear error that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise RayMissingError(
            "Running on a cluster needs Ray, an optional extra: pip install 'webssl-lens[cluster]' "
            "(or pip install 'ray>=2.9'), then run the same command again. Without --ray the batch "
            "runs on this machine."
        ) from err
    return ray


@dataclass(frozen=True, slots=True)
class _Job:
    """One video for a worker: what to analyse and how, with its cached frames."""

    path: str
    info: VideoInfo
    sampling: dict
    params: dict
    max_frames: int | None
    cached_frames: np.ndarray  # int64 (M,): analysed before, embeddings cached
    cached_vectors: np.ndarray  # float32 (M, D)


@dataclass(frozen=True, slots=True, eq=False)
class _Analysed:
    """A worker's analysis of one video: every recorded frame's results (and regions), the
    embeddings it computed, and what it did."""

    info: VideoInfo
    embed_key: str
    frames: np.ndarray  # int64 (N,)
    times: np.ndarray  # float64 (N,)
    sources: np.ndarray  # int64 (N,)
    image_ids: np.ndarray  # int64 (N, k)
    scores: np.ndarray  # float32 (N, k)
    regions: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None  # frames, ids, scores, boxes
    computed_frames: np.ndarray  # int64 (M,)
    computed_times: np.ndarray  # float64 (M,)
    vectors: np.ndarray  # float32 (M, D)
    analysis: Analysis


class _MemorySink:
    """A worker's :class:`core.matching.analysis.FrameSink`: batches kept for the driver."""

    def __init__(self, cached_frames: np.ndarray, cached_vectors: np.ndarray) -> None:
        self._cached = {int(f): v for f, v in zip(cached_frames, cached_vectors, strict=True)}
        self.computed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.rows: list[tuple[np.ndarray, ...]] = []
        self.region_rows: list[tuple[np.ndarray, ...]] = []

    def cached_vectors(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([self._cached[int(f)] for f in frames])

    def embedded(self, frames: np.ndarray, times: np.ndarray, vectors: np.ndarray) -> None:
        self.computed.append((frames, times, vectors))

    def results(self, frames, times, sources, image_ids, scores) -> None:
        self.rows.append((frames, times, sources, image_ids, scores))

    def regions(self, frames, image_ids, scores, boxes) -> None:
        self.region_rows.append((frames, image_ids, scores, boxes))


def _joined(parts: list[tuple[np.ndarray, ...]], empty: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True)) if parts else empty


class _Worker:
    """A Ray actor: loads the model and the collection's search once, then analyses videos."""

    def __init__(
        self,
        model: str,
        device: str,
        precision: str,
        batch_size: int | None,
        threads: int,
        collection: EmbeddingMatrix,
        thumbnails: dict[int, bytes] | None,
        regions: dict | None,
    ) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.extractor = FeatureExtractor.load(model, device=device, precision=precision)
        if batch_size:
            self.extractor.batch_size = batch_size
        self.searcher = ExactSearch.of(collection)
        self.thumbnails = thumbnails or {}
        self.regions = RegionSettings.from_dict(regions) if regions else None

    def analyse(self, job: _Job) -> _Analysed:
        fx, params = self.extractor, MatchParams.from_dict(job.params)
        finder = None
        if self.regions is not None:
            thumbs = self.thumbnails
            finder = RegionSearch(
                fx, self.searcher, lambda ids: {i: thumbs[i] for i in ids if i in thumbs}, self.regions
            )
        sink = _MemorySink(job.cached_frames, job.cached_vectors)
        analysis = analyse_frames(
            job.path,
            fx,
            self.searcher,
            Sampling.from_dict(job.sampling).planner(fx.preprocessing, threshold=params.threshold),
            params,
            sink,
            cached={int(f) for f in job.cached_frames},
            finder=finder,
            max_frames=job.max_frames,
        )
        k, dim = params.top_k, fx.hidden_size
        frames, times, sources, ids, scores = _joined(
            sink.rows,
            (
                np.zeros(0, np.int64),
                np.zeros(0),
                np.zeros(0, np.int64),
                np.zeros((0, k), np.int64),
                np.zeros((0, k), np.float32),
            ),
        )
        c_frames, c_times, vectors = _joined(
            sink.computed, (np.zeros(0, np.int64), np.zeros(0), np.zeros((0, dim), np.float32))
        )
        regions = None
        if finder is not None:
            regions = _joined(
                sink.region_rows,
                (
                    np.zeros(0, np.int64),
                    np.zeros(0, np.int64),
                    np.zeros(0, np.float32),
                    np.zeros((0, 4), np.float32),
                ),
            )
        return _Analysed(
            job.info,
            fx.embed_key(),
            frames,
            times,
            sources,
            ids,
            scores,
            regions,
            c_frames,
            c_times,
            vectors,
            analysis,
        )


def match_on_ray(
    index: Index,
    paths: Iterable[str | os.PathLike],
    collection: str,
    extractor: FeatureExtractor | ModelOnDemand,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: int = 1,
    sampling: Sampling | None = None,
    params: MatchParams | None = None,
    batch_size: int | None = None,
    max_frames: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    regions: RegionSettings | None = None,
) -> BatchReport:
    """:func:`core.matching.batch.match_batch` with the analysis done by Ray workers (``regions``:
    region mode too).

    Args:
        address: the Ray cluster (None: a local instance on this machine's cores).
        workers: actors to start (default: the cluster's CPUs / ``cpus_per_worker``).
        cpus_per_worker: CPUs each actor reserves (and its torch threads).

    Raises:
        RayMissingError: Ray is not installed.
        FileNotFoundError, db.NotFoundError, db.ModelMismatchError, EmptyCollectionError.
    """
    ray = import_ray()
    model = ModelOnDemand.of(extractor)  # the driver loads it only when a video is left to match
    batch = start_batch(
        index, paths, collection, model, sampling, params, max_frames, progress, cancel, regions
    )
    coll, reporter, setup = batch.collection, batch.reporter, model.setup
    wanted = run_parameters(setup, batch.sampling, batch.params, max_frames, regions)
    items: dict[str, BatchItem] = {}
    plans = {plan.path: plan for plan in batch.plans}
    jobs = []
    for plan in batch.plans:
        item = plan.skipped() or plan.searched_again(index, regions)
        if item is not None:
            items[plan.path] = item
        else:
            assert plan.info is not None
            # region mode needs every analysed frame's pixels: no frame comes from the cache
            cached_frames, _, cached_vectors = (
                index.load_frame_embeddings(plan.info.sha256, setup.embed_key())
                if regions is None
                else (np.zeros(0, np.int64), None, np.zeros((0, setup.hidden_size), np.float32))
            )
            jobs.append(
                _Job(
                    plan.path,
                    plan.info,
                    batch.sampling.to_dict(),
                    batch.params.to_dict(),
                    max_frames,
                    cached_frames,
                    cached_vectors,
                )
            )
    reporter.update(len(items))
    count = 0
    if jobs:
        started_here = _start(ray, address)
        try:
            count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
            count = min(count, len(jobs))
            actor = ray.remote(num_cpus=cpus_per_worker)(_Worker)
            # sent once, shared by the workers of a node
            matrix = ray.put(index.load_embeddings(coll.id))
            thumbnails = ray.put(_all_thumbnails(index, coll.id) if regions else None)
            settings = regions.to_dict() if regions else None
            pool = ray.util.ActorPool(
                [
                    actor.remote(
                        setup.model_id,
                        "cpu",
                        setup.precision,
                        batch_size,
                        cpus_per_worker,
                        matrix,
                        thumbnails,
                        settings,
                    )
                    for _ in range(count)
                ]
            )
            logger.info("%d videos on %d Ray workers", len(jobs), count)
            for done in pool.map_unordered(lambda a, job: a.analyse.remote(job), jobs):
                reporter.check_cancelled()
                started = time.perf_counter()
                view = _store(index, coll, setup, wanted, batch.params, done)
                logger.info("%s: stored in %.1f s", done.info.path, time.perf_counter() - started)
                plan = plans[done.info.path]
                items[done.info.path] = plan.matched_from_video(view, done.analysis.elapsed_s)
                reporter.update(len(items))
        finally:
            if started_here:
                ray.shutdown()
    return BatchReport(tuple(items[p] for p in batch.files), reporter.elapsed_s, workers=max(1, count))


def _start(ray, address: str | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (and so shuts it down)."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
        return True
    # a local instance: its workers import this project from where this process does
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, log_to_driver=False, include_dashboard=False)
    return True


def _all_thumbnails(index: Index, collection_id: int) -> dict[int, bytes]:
    """Every thumbnail of a collection (region mode's workers make their templates from them)."""
    ids = [int(i) for i in index.load_embeddings(collection_id).image_ids]
    return index.get_thumbnails(ids)


def _store(
    index: Index, coll, setup: ModelSetup, wanted: dict, params: MatchParams, done: _Analysed
) -> RunView:
    """The driver's part: cache a video's computed embeddings, store its run, results and regions
    (the single writer)."""
    video = register_video(index, done.info)
    if done.embed_key != wanted["embed_key"]:
        raise WebSSLError(
            f"A worker analysed {done.info.path} with another model setup ({done.embed_key}, not "
            f"{wanted['embed_key']}): install the same webssl-lens and model on every node."
        )
    for start in range(0, len(done.computed_frames), _ROWS):
        end = start + _ROWS
        index.add_frame_embeddings(
            video.sha256,
            done.embed_key,
            done.computed_frames[start:end],
            done.computed_times[start:end],
            done.vectors[start:end],
        )
    run_id = start_run(index, video, coll, setup.model_id, wanted)
    for start in range(0, len(done.frames), _ROWS):
        end = start + _ROWS
        index.add_frame_results(
            run_id,
            done.frames[start:end],
            done.times[start:end],
            done.sources[start:end],
            done.image_ids[start:end],
            done.scores[start:end],
        )
    if done.regions is not None:
        frames, ids, scores, boxes = done.regions
        for start in range(0, len(frames), _ROWS):
            end = start + _ROWS
            index.add_frame_regions(
                run_id, frames[start:end], ids[start:end], scores[start:end], boxes[start:end]
            )
    return finish_analysis(index, run_id, done.info, params, done.analysis, worker="ray")


_ROWS = 4096
"""Rows a transaction when the driver stores a worker's video."""
