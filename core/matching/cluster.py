"""A batch of videos on a Ray cluster: workers decode and embed, this process alone writes SQLite.

Each worker is a Ray actor that loads the model once and turns a video into its sampled,
embedded frames (:func:`core.matching.frame_embedding.embed_video`: the same sampling, batching
and preprocessing as on one machine). The driver (this process) probes the videos, skips those
matched before, sends the others out, and for each result as it comes back caches the frame
embeddings, searches them against the collection and stores the run
(:func:`core.matching.runs.store_cached_run`): SQLite has one writer, so nothing needs a
network file system or a database server, and a killed batch resumes like a local one (frames
cached before are not embedded again).

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
from pathlib import Path

from core.errors import WebSSLError
from core.matching.batch import BatchItem, BatchReport, start_batch
from core.matching.frame_embedding import EmbeddedFrames
from core.matching.params import MatchParams
from core.matching.pipeline import register_video, run_parameters
from core.matching.runs import store_cached_run
from core.matching.sampling import Sampling
from core.model.features import FeatureExtractor
from core.model.on_demand import ModelOnDemand
from core.model.setup import ModelSetup
from core.progress import ProgressCallback
from db import Index

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


class _Worker:
    """A Ray actor: loads the model once, then embeds videos."""

    def __init__(self, model: str, device: str, precision: str, batch_size: int | None, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.extractor = FeatureExtractor.load(model, device=device, precision=precision)
        if batch_size:
            self.extractor.batch_size = batch_size

    def embed(
        self, path: str, info, sampling: dict, cached: list[int], max_frames: int | None
    ) -> EmbeddedFrames:
        from core.matching.frame_embedding import embed_video

        return embed_video(
            path,
            self.extractor,
            sampling=Sampling.from_dict(sampling),
            info=info,
            cached=set(cached),
            max_frames=max_frames,
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
) -> BatchReport:
    """:func:`core.matching.batch.match_batch` with the embedding done by Ray workers.

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
    batch = start_batch(index, paths, collection, model, sampling, params, max_frames, progress, cancel)
    coll, reporter, setup = batch.collection, batch.reporter, model.setup
    wanted = run_parameters(setup, batch.sampling, batch.params, max_frames)
    items: dict[str, BatchItem] = {}
    plans = {plan.path: plan for plan in batch.plans}
    jobs = []
    for plan in batch.plans:
        item = plan.skipped()
        if item is not None:
            items[plan.path] = item
        else:
            assert plan.info is not None
            cached = sorted(index.cached_frame_indices(plan.info.sha256, setup.embed_key()))
            jobs.append((plan.path, plan.info, batch.sampling.to_dict(), cached, max_frames))
    reporter.update(len(items))
    count = 0
    if jobs:
        started_here = _start(ray, address)
        try:
            count = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
            count = min(count, len(jobs))
            actor = ray.remote(num_cpus=cpus_per_worker)(_Worker)
            pool = ray.util.ActorPool(
                [
                    actor.remote(setup.model_id, "cpu", setup.precision, batch_size, cpus_per_worker)
                    for _ in range(count)
                ]
            )
            logger.info("%d videos on %d Ray workers", len(jobs), count)
            for frames in pool.map_unordered(lambda a, job: a.embed.remote(*job), jobs):
                reporter.check_cancelled()
                started = time.perf_counter()
                view = _store(index, coll, setup, wanted, batch.params, frames)
                logger.info("%s: stored in %.1f s", frames.info.path, time.perf_counter() - started)
                items[frames.info.path] = plans[frames.info.path].matched(view, frames.elapsed_s)
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


def _store(index: Index, coll, setup: ModelSetup, wanted: dict, params: MatchParams, frames: EmbeddedFrames):
    """The driver's part: cache a video's embeddings and store its run (the single writer)."""
    video = register_video(index, frames.info)
    key = frames.embed_key
    if key != wanted["embed_key"]:
        raise WebSSLError(
            f"A worker embedded {frames.info.path} with another model setup ({key}, not {wanted['embed_key']}): "
            "install the same webssl-lens and model on every node."
        )
    for start in range(0, len(frames.computed_index), 512):
        end = start + 512
        index.add_frame_embeddings(
            video.sha256,
            key,
            frames.computed_index[start:end],
            frames.computed_time[start:end],
            frames.vectors[start:end],
        )
    resumable = index.find_resumable_run(
        video_id=video.id, collection_id=coll.id, model_id=setup.model_id, params=wanted
    )
    if resumable is not None:
        index.restart_run(resumable.id)
    decode = frames.decode
    stats = {
        "computed": len(frames.computed_index),
        "cached": frames.analysed - len(frames.computed_index),
        "elapsed_s": frames.elapsed_s,
        "decisions": frames.decisions,
        "decode": {"frames": decode.decoded, "lost_frames": decode.lost, "ended_early": decode.ended_early},
        "worker": "ray",
    }
    return store_cached_run(
        index,
        video=video,
        collection=coll,
        model_id=setup.model_id,
        run_params=wanted,
        params=params,
        frame_index=frames.frame_index,
        time_s=frames.time_s,
        source_frame=frames.source_frame,
        stats=stats,
        run_id=None if resumable is None else resumable.id,
    )
