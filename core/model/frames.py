"""A video's frames as batches of model input: decode, choose, preprocess.

One batcher serves every pass of the model over a video (the match pipeline, the PCA video and
its colour fit). It runs in the producer thread (see :func:`core.prefetch.background`), so
decoding, the sampling decisions and preprocessing overlap with inference in the consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.lazy import torch
from core.media.video import DecodeReport, Frame, FrameFilter, iter_frames
from core.model.preprocess import Preprocessing, preprocess_images

COMPUTE = 0
"""The tag of frames that need a model pass (their pixels are in :attr:`FrameBatch.pixels`)."""


@dataclass(slots=True)
class FrameBatch:
    """Consecutive recorded frames and the model input of those that need a pass.

    Attributes:
        index, time: the recorded frames (index and presentation time), in order.
        tag: per frame, the classifier's tag (:data:`COMPUTE` for frames with pixels).
        source: per frame, the frame whose embedding gives its result (itself, or an earlier one).
        pixels: preprocessed model input of the frames tagged :data:`COMPUTE`, in order; None
            when there are none.
        decoded: frames decoded so far, chosen or not.
        extra: what ``frame_batches(extra=...)`` made of the frames tagged :data:`COMPUTE`
            (e.g. region mode's input), or None.
    """

    index: np.ndarray
    time: np.ndarray
    tag: np.ndarray
    source: np.ndarray
    pixels: torch.Tensor | None
    decoded: int
    extra: Any = None

    def __len__(self) -> int:
        return len(self.index)


Classifier = Callable[[Frame], tuple[int, int]]
"""``classify(frame) -> (tag, source frame)``; frames tagged :data:`COMPUTE` are preprocessed."""


def _every_frame(frame: Frame) -> tuple[int, int]:
    return COMPUTE, frame.index


def frame_batches(
    path: str,
    prep: Preprocessing,
    batch_size: int,
    *,
    classify: Classifier = _every_frame,
    select: FrameFilter | None = None,
    max_frames: int | None = None,
    max_pending: int | None = None,
    pin_memory: bool = False,
    report: DecodeReport | None = None,
    extra: Callable[[list[np.ndarray]], Any] | None = None,
) -> Iterator[FrameBatch]:
    """Decode ``path`` and yield batches of at most ``batch_size`` frames to compute.

    Args:
        prep: the model's preprocessing.
        classify: tags each decoded frame that ``select`` accepted (default: compute all).
        select: ``select(index, time_s)``; rejected frames are decoded but not converted and
            not recorded.
        max_frames: stop after this many decoded frames.
        max_pending: a batch is also closed after this many recorded frames (so frames that
            need no pass are reported without waiting for a full batch); default 512.
        pin_memory: put the pixels in page-locked memory (an asynchronous copy to a GPU).
        report: filled with what was decoded (see :class:`core.media.video.DecodeReport`).
        extra: ``extra(frames)`` on the RGB frames to compute, in this (the decoding) thread;
            its result is :attr:`FrameBatch.extra`.

    The last batch may be empty: it reports the final count of decoded frames.
    """
    max_pending = max_pending or 512
    idx: list[int] = []
    times: list[float] = []
    tags: list[int] = []
    sources: list[int] = []
    frames: list[np.ndarray] = []
    decoded = 0

    def counted(i: int, t: float) -> bool:
        nonlocal decoded
        decoded = i + 1
        return select is None or select(i, t)

    def make() -> FrameBatch:
        pixels = preprocess_images(frames, prep) if frames else None
        if pixels is not None and pin_memory:
            pixels = pixels.pin_memory()
        return FrameBatch(
            np.asarray(idx, np.int64),
            np.asarray(times, np.float64),
            np.asarray(tags, np.int8),
            np.asarray(sources, np.int64),
            pixels,
            decoded,
            extra(frames) if extra is not None and frames else None,
        )

    for frame in iter_frames(path, select=counted, max_frames=max_frames, report=report):
        tag, source = classify(frame)
        idx.append(frame.index)
        times.append(frame.time_s)
        tags.append(tag)
        sources.append(source)
        if tag == COMPUTE:
            frames.append(frame.rgb)
        if len(frames) >= batch_size or len(idx) >= max_pending:
            yield make()
            idx, times, tags, sources, frames = [], [], [], [], []
    yield make()
