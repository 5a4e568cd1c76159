"""A video's sampled frames embedded, without matching them: the work of ``index-videos``.

Frames are chosen as in a match run (:class:`core.matching.sampling.Sampling`, change-driven by
default) and decoded, chosen and preprocessed in a background thread while the model runs
(:func:`core.model.frames.frame_batches`). Every chosen frame is *recorded* with the frame whose
embedding stands for it (itself when analysed, the last analysed frame when it inherits); only
analysed frames that are not cached already get a model pass.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

from core.matching.analysis import classifier
from core.matching.sampling import Sampling
from core.media.video import DecodeReport, VideoInfo, probe_video
from core.model.features import FeatureExtractor
from core.model.frames import COMPUTE, frame_batches
from core.prefetch import background
from core.progress import ProgressCallback, ProgressReporter


@dataclass(frozen=True, slots=True, eq=False)
class EmbeddedFrames:
    """A video's recorded frames after sampling, and the embeddings computed for them."""

    info: VideoInfo
    embed_key: str
    frame_index: np.ndarray  # int64 (N,): every recorded frame, in order
    time_s: np.ndarray  # float64 (N,)
    source_frame: np.ndarray  # int64 (N,): the analysed frame that stands for it
    computed_index: np.ndarray  # int64 (M,): frames that got a model pass
    computed_time: np.ndarray  # float64 (M,)
    vectors: np.ndarray  # float32 (M, D) as computed (empty when not kept)
    decisions: dict  # why frames were analysed (see FramePlanner.reasons)
    decode: DecodeReport
    elapsed_s: float

    @property
    def analysed(self) -> int:
        return int(np.unique(self.source_frame).size)


BatchSink = Callable[[np.ndarray, np.ndarray, np.ndarray], None]
"""``sink(frame indices, times, vectors)``: where each batch's computed embeddings go."""


def embed_video(
    path: str | os.PathLike,
    extractor: FeatureExtractor,
    *,
    sampling: Sampling | None = None,
    info: VideoInfo | None = None,
    cached: Collection[int] = frozenset(),
    batch_size: int | None = None,
    max_frames: int | None = None,
    sink: BatchSink | None = None,
    keep_vectors: bool = True,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> EmbeddedFrames:
    """Decode, sample and embed a video's frames.

    Args:
        info: the video's probe (with its hash), if already known.
        cached: analysed frames whose embeddings are cached already (no model pass).
        sink: receives each batch's computed embeddings as they come (e.g. the frame cache).
        keep_vectors: also return the computed embeddings (for a caller that keeps them);
            False keeps memory flat on long videos.

    Raises:
        VideoOpenError: the video cannot be opened or has no frames.
        core.progress.Cancelled: ``cancel`` was set.
    """
    sampling = sampling or Sampling.auto()
    info = info or probe_video(path)
    planner = sampling.planner(extractor.preprocessing)
    decode = DecodeReport()
    total = info.frame_count if max_frames is None else min(info.frame_count, max_frames)
    reporter = ProgressReporter("embedding frames", "frames", total or None, progress, cancel)

    recorded: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    computed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    reporter.update(0)
    producer = frame_batches(
        str(path),
        extractor.preprocessing,
        batch_size or extractor.batch_size,
        classify=classifier(planner, cached),
        select=planner.wants,
        max_frames=max_frames,
        pin_memory=extractor.device.type == "cuda",
        report=decode,
    )
    for batch in background(producer, maxsize=2, name="video-decoder"):
        reporter.check_cancelled()
        recorded.append((batch.index, batch.time, batch.source))
        if batch.pixels is not None:
            mine = batch.tag == COMPUTE
            vectors = extractor.forward(batch.pixels).cls
            if sink is not None:
                sink(batch.index[mine], batch.time[mine], vectors)
            kept = vectors if keep_vectors else np.zeros((len(vectors), 0), np.float32)
            computed.append((batch.index[mine], batch.time[mine], kept))
        reporter.update(batch.decoded)
    frames, times, sources = (np.concatenate(parts) for parts in zip(*recorded, strict=True))
    if computed:
        c_index, c_time, c_vectors = (np.concatenate(parts) for parts in zip(*computed, strict=True))
    else:
        c_index, c_time = np.zeros(0, np.int64), np.zeros(0, np.float64)
        c_vectors = np.zeros((0, extractor.hidden_size if keep_vectors else 0), np.float32)
    return EmbeddedFrames(
        info=info,
        embed_key=extractor.embed_key(),
        frame_index=frames.astype(np.int64),
        time_s=times.astype(np.float64),
        source_frame=sources.astype(np.int64),
        computed_index=c_index.astype(np.int64),
        computed_time=c_time.astype(np.float64),
        vectors=c_vectors.astype(np.float32, copy=False),
        decisions=dict(planner.reasons),
        decode=decode,
        elapsed_s=reporter.elapsed_s,
    )
