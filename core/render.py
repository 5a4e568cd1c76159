"""Rendered videos: layer evolution of one image, colour-stable PCA of a video, matched video.

Every render writes its frames one at a time to :class:`core.video.VideoWriter` (H.264,
``yuv420p``, ``+faststart``: plays in Chrome and Firefox ``<video>`` elements). Nothing holds
a video's frames in a list: memory depends on the batch size and panel size, not on the
video's length. The only exception is the optional GIF of :func:`render_layers`, which keeps
one palette image per layer (bounded by the model's depth).

>>> render_pca_video(extractor, "clip.mp4", "clip_pca.mp4", side_by_side=True)   # doctest: +SKIP
RenderResult(path=PosixPath('clip_pca.mp4'), frames=240, fps=24.0, width=720, height=360, gif=None)
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from core.errors import InvalidArgumentError, VideoOpenError, WebSSLError
from core.features import FeatureExtractor
from core.prefetch import background
from core.preprocess import Preprocessing, preprocess_images
from core.progress import ProgressCallback, ProgressReporter
from core.runs import RunView, load_run
from core.video import VideoWriter, format_time, iter_frames, probe_video
from core.visualize import (
    PcaColorizer,
    border_mask,
    input_view,
    label,
    layer_grids,
    letterbox,
    preprocessing_for,
    upscale_nearest,
)
from db import Index

logger = logging.getLogger(__name__)

__all__ = [
    "RenderError",
    "RenderResult",
    "VideoPca",
    "check_render_options",
    "fit_video_pca",
    "render_layers",
    "render_match_video",
    "render_pca_video",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v"})
DEFAULT_FPS = 25.0  # when a video does not say its frame rate
MAX_FIT_PATCHES = 16384  # patch samples kept for the video PCA fit (all sampled frames together)
_NO_MATCH_BG = (24, 24, 24)
_THUMB_CACHE = 64  # letterboxed thumbnails kept (a run shows few distinct images)


class RenderError(WebSSLError):
    """A video cannot be rendered from what is stored."""


@dataclass(frozen=True)
class RenderResult:
    """A written video: where, how many frames, frame rate and size (and the GIF, if any)."""

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    gif: Path | None = None


# -- argument checks --------------------------------------------------------------------------
def check_render_options(
    out: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    panel_height: int | None = None,
    fit_samples: int | None = None,
    batch_size: int | None = None,
) -> Path:
    """Check a render's options before any work (the CLI calls it before loading the model).

    Returns:
        ``out`` as a Path.

    Raises:
        InvalidArgumentError: not an .mp4 name, the source video itself, or a value out of range.
    """
    path = Path(out)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InvalidArgumentError(f"output must be an .mp4 file (H.264 that browsers play), got {path}")
    if path.is_dir():
        raise InvalidArgumentError(f"output {path} is a folder; give a file name ending in .mp4")
    if source is not None and path.exists() and Path(source).exists() and path.samefile(source):
        raise InvalidArgumentError(f"output {path} is the source video; choose another file name")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InvalidArgumentError(f"fps must be a positive number, got {fps}")
    _check_positive(max_frames, "max frames")
    _check_positive(panel_height, "panel height", 16)
    _check_positive(fit_samples, "fit samples")
    _check_positive(batch_size, "batch size")
    return path


def _check_positive(value: int | None, what: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise InvalidArgumentError(f"{what} must be ≥ {minimum}, got {value}")


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def _panel_size(height: int, rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of a panel ``height`` pixels high showing a rows×cols grid, even sides."""
    return _even(height * cols / rows), _even(height)


def _fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to exactly width×height (callers pass sizes of the same aspect ratio)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    interp = cv2.INTER_AREA if width < rgb.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interp)


# -- layer evolution --------------------------------------------------------------------------
def render_layers(
    extractor: FeatureExtractor,
    rgb: np.ndarray,
    out: str | os.PathLike,
    *,
    fps: float = 2.0,
    mode: str = "crop",
    short_side: int = 448,
    panel_size: int = 448,
    gif: bool = False,
    with_image: bool = True,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """One frame per transformer layer: the PCA map of that layer, labelled "Layer i/N".

    The PCA is fitted on the final layer (see :func:`core.visualize.layer_maps`), so colours
    mean the same in every frame.

    Args:
        extractor: the loaded model.
        rgb: H×W×3 uint8 image.
        out: the .mp4 file to write (folders are created).
        fps: frames (layers) per second.
        mode, short_side: "crop" or "full" (see :func:`core.visualize.image_maps`).
        panel_size: height of a panel in pixels (the width follows the patch grid's aspect).
        gif: also write a looping GIF next to ``out`` (same name, ``.gif``).
        with_image: show the model-input view left of the map.
        progress, cancel: progress callback and cancellation event.

    Returns:
        The written video (and GIF).

    Raises:
        InvalidArgumentError: bad output name, fps, mode or panel size.
        Cancelled: ``cancel`` was set.
    """
    out = check_render_options(out, fps=fps)
    _check_positive(panel_size, "panel size", 16)
    reporter = ProgressReporter("rendering", "layers", extractor.num_layers, progress, cancel)
    reporter.update(0, "running the model")
    view, grids = layer_grids(extractor, rgb, mode=mode, short_side=short_side)
    reporter.check_cancelled()
    rows, cols = grids[0].shape[:2]
    pw, ph = _panel_size(panel_size, rows, cols)
    image_panel = _fit(view, pw, ph) if with_image else None
    gif_frames = []
    n = len(grids)
    with VideoWriter(out, fps=fps) as writer:
        for i, grid in enumerate(grids, start=1):
            panel = label(upscale_nearest(grid, ph, pw), f"Layer {i}/{n}")
            frame = panel if image_panel is None else np.hstack([image_panel, panel])
            writer.write(frame)
            if gif:
                gif_frames.append(_palette_image(frame))
            reporter.update(i)
            reporter.check_cancelled()
    gif_path = None
    if gif:
        gif_path = out.with_suffix(".gif")
        gif_frames[0].save(
            gif_path,
            save_all=True,
            append_images=gif_frames[1:],
            duration=max(20, round(1000 / fps)),
            loop=0,
        )
    width, height = writer.size or (0, 0)
    logger.info("wrote %d layer frames to %s", writer.frames_written, out)
    return RenderResult(out, writer.frames_written, fps, width, height, gif_path)


def _palette_image(rgb: np.ndarray):
    from PIL import Image

    return Image.fromarray(rgb).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )


# -- the colour-stable PCA of a video ---------------------------------------------------------
@dataclass(frozen=True, eq=False)
class VideoPca:
    """A colorizer fitted on patches sampled across a video."""

    colorizer: PcaColorizer
    preprocessing: Preprocessing
    frame_indices: tuple[int, ...]  # the frames whose patches were sampled
    samples: int  # patch features the PCA was fitted on
    grid: tuple[int, int]  # (rows, cols) of the frames' patch grid


@dataclass(frozen=True, eq=False)
class _Batch:
    index: list[int]
    time: list[float]
    pixels: torch.Tensor


def _batches(
    path: str | os.PathLike,
    prep: Preprocessing,
    batch_size: int,
    *,
    max_frames: int | None = None,
    wanted: set[int] | None = None,
) -> Iterator[_Batch]:
    """Decode (only ``wanted`` frames, if given) and preprocess, ``batch_size`` frames at a time."""
    select = None if wanted is None else (lambda i, _t: i in wanted)
    if wanted is not None:
        last = max(wanted) + 1
        max_frames = last if max_frames is None else min(max_frames, last)
    idx: list[int] = []
    times: list[float] = []
    frames: list[np.ndarray] = []
    for frame in iter_frames(path, select=select, max_frames=max_frames):
        idx.append(frame.index)
        times.append(frame.time_s)
        frames.append(frame.rgb)
        if len(frames) >= batch_size:
            yield _Batch(idx, times, preprocess_images(frames, prep))
            idx, times, frames = [], [], []
    if frames:
        yield _Batch(idx, times, preprocess_images(frames, prep))


def _frame_total(path: str | os.PathLike, max_frames: int | None) -> tuple[int, float]:
    """(frames to render, source fps); counts by decoding when the container has no count."""
    info = probe_video(path, compute_hash=False)
    total = info.frame_count
    if total <= 0:
        total = _decoded_count(path, max_frames)
    if max_frames is not None:
        total = min(total, max_frames)
    return total, info.fps


def _decoded_count(path: str | os.PathLike, max_frames: int | None) -> int:
    count = 0

    def counted(i: int, _t: float) -> bool:
        nonlocal count
        count = i + 1
        return False

    for _ in iter_frames(path, select=counted, max_frames=max_frames):
        pass
    return count


def _sample_indices(total: int, fit_samples: int) -> list[int]:
    n = max(1, min(fit_samples, total))
    return sorted({int(round(x)) for x in np.linspace(0, max(0, total - 1), n)})


def _fit_video_pca(
    extractor: FeatureExtractor,
    video_path: str | os.PathLike,
    prep: Preprocessing,
    total: int,
    *,
    fit_samples: int,
    batch_size: int,
    background_threshold: float | None,
    max_patches: int,
    reporter: ProgressReporter | None,
) -> VideoPca:
    wanted = _sample_indices(total, fit_samples)
    per_frame = max(1, max_patches // len(wanted))
    rng = np.random.default_rng(0)
    samples: list[np.ndarray] = []
    borders: list[np.ndarray] = []
    used: list[int] = []
    grid: tuple[int, int] | None = None
    for batch in _batches(video_path, prep, batch_size, wanted=set(wanted)):
        if reporter is not None:
            reporter.check_cancelled()
        feats = extractor.forward(batch.pixels, patches=True)
        assert feats.patches is not None
        _, rows, cols, d = feats.patches.shape
        grid = (rows, cols)
        edge = border_mask(rows, cols).reshape(-1)
        for patches in feats.patches:
            flat = patches.reshape(-1, d)
            keep = np.arange(len(flat))
            if len(flat) > per_frame:
                keep = np.sort(rng.choice(len(flat), per_frame, replace=False))
            samples.append(flat[keep].copy())
            borders.append(edge[keep])
        used.extend(batch.index)
        if reporter is not None:
            reporter.update(reporter.done + len(batch.index), "fitting colours")
    if not samples or grid is None:
        raise RenderError(f"{video_path}: no frame could be decoded to fit the colours")
    x = np.concatenate(samples)
    colorizer = PcaColorizer(background_threshold=background_threshold).fit(x, border=np.concatenate(borders))
    logger.info("video PCA fitted on %d patches of %d frames", len(x), len(used))
    return VideoPca(colorizer, prep, tuple(used), len(x), grid)


def fit_video_pca(
    extractor: FeatureExtractor,
    video_path: str | os.PathLike,
    *,
    mode: str = "crop",
    short_side: int = 448,
    fit_samples: int = 32,
    max_frames: int | None = None,
    batch_size: int | None = None,
    background_threshold: float | None = None,
    max_patches: int = MAX_FIT_PATCHES,
) -> VideoPca:
    """Fit a :class:`~core.visualize.PcaColorizer` on patches of ``fit_samples`` frames spread
    evenly over the video (its first ``max_frames`` frames), so colours mean the same thing from
    the first frame to the last. At most ``max_patches`` patch features are kept (a random subset
    of each sampled frame's patches when there are more).

    Raises:
        VideoOpenError: the video cannot be opened; InvalidArgumentError: bad options.
    """
    _check_positive(fit_samples, "fit samples")
    _check_positive(max_frames, "max frames")
    prep = preprocessing_for(extractor, mode, short_side)
    total, _ = _frame_total(video_path, max_frames)
    return _fit_video_pca(
        extractor,
        video_path,
        prep,
        total,
        fit_samples=fit_samples,
        batch_size=batch_size or extractor.batch_size,
        background_threshold=background_threshold,
        max_patches=max_patches,
        reporter=None,
    )


def render_pca_video(
    extractor: FeatureExtractor,
    video_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    side_by_side: bool = False,
    max_frames: int | None = None,
    fps: float | None = None,
    panel_height: int = 360,
    fit_samples: int = 32,
    batch_size: int | None = None,
    mode: str = "crop",
    short_side: int = 448,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """A video of the final-layer patch features of every frame, in colour-stable PCA colours.

    Two passes: (1) ``fit_samples`` frames spread across the video are run through the model and
    a :class:`~core.visualize.PcaColorizer` is fitted on their patches; (2) all frames (up to
    ``max_frames``) are decoded, run through the model in batches, coloured with that one PCA,
    labelled with their frame number and time and written one by one.

    Args:
        extractor: the loaded model.
        video_path: the source video.
        out: the .mp4 file to write.
        side_by_side: show the model-input view (centre crop or full frame) left of the map.
        max_frames: stop after this many frames.
        fps: output frame rate (default: the source's).
        panel_height: height of a panel in pixels.
        fit_samples: frames sampled for the PCA fit.
        batch_size: frames per forward pass (default: the extractor's).
        mode, short_side: "crop" or "full" (see :func:`core.visualize.image_maps`).
        progress, cancel: progress callback (one bar over both passes) and cancellation event.

    Raises:
        VideoOpenError: the video cannot be opened; InvalidArgumentError: bad options;
        Cancelled: ``cancel`` was set (the frames written so far are kept, playable).
    """
    out = check_render_options(
        out,
        source=video_path,
        fps=fps,
        max_frames=max_frames,
        panel_height=panel_height,
        fit_samples=fit_samples,
        batch_size=batch_size,
    )
    prep = preprocessing_for(extractor, mode, short_side)
    batch_size = batch_size or extractor.batch_size
    total, source_fps = _frame_total(video_path, max_frames)
    out_fps = fps or source_fps or DEFAULT_FPS
    if not fps and not source_fps:
        logger.warning("%s does not say its frame rate; writing %g fps", video_path, DEFAULT_FPS)
    n_fit = len(_sample_indices(total, fit_samples))
    reporter = ProgressReporter("rendering", "frames", n_fit + total, progress, cancel)
    reporter.update(0, "fitting colours")
    fitted = _fit_video_pca(
        extractor,
        video_path,
        prep,
        total,
        fit_samples=fit_samples,
        batch_size=batch_size,
        background_threshold=None,
        max_patches=MAX_FIT_PATCHES,
        reporter=reporter,
    )
    reporter.update(n_fit, "rendering")
    rows, cols = fitted.grid
    pw, ph = _panel_size(panel_height, rows, cols)
    done = 0
    with VideoWriter(out, fps=out_fps) as writer:
        producer = _batches(video_path, prep, batch_size, max_frames=max_frames)
        for batch in background(producer, maxsize=2, name="pca-video-decoder"):
            reporter.check_cancelled()
            feats = extractor.forward(batch.pixels, patches=True)
            assert feats.patches is not None
            colours = fitted.colorizer.transform(feats.patches)  # B×rows×cols×3
            views = input_view(batch.pixels, prep) if side_by_side else None
            for j, (i, t) in enumerate(zip(batch.index, batch.time, strict=True)):
                panel = upscale_nearest(colours[j], ph, pw)
                frame = panel if views is None else np.hstack([_fit(views[j], pw, ph), panel])
                writer.write(label(frame, f"frame {i}  {format_time(t)}"))
            done += len(batch.index)
            reporter.update(n_fit + done)
    width, height = writer.size or (0, 0)
    if writer.frames_written == 0:
        raise RenderError(f"{video_path}: no frames decoded")
    logger.info("wrote %d PCA frames to %s", writer.frames_written, out)
    return RenderResult(out, writer.frames_written, out_fps, width, height)


# -- the matched video ------------------------------------------------------------------------
class _Thumbnails:
    """Letterboxed thumbnails of database images, decoded once each (a small LRU dict)."""

    def __init__(self, index: Index, width: int, height: int, size: int = _THUMB_CACHE) -> None:
        self.index, self.width, self.height, self.size = index, width, height, size
        self._cache: OrderedDict[int, np.ndarray | None] = OrderedDict()

    def get(self, image_id: int) -> np.ndarray | None:
        if image_id in self._cache:
            self._cache.move_to_end(image_id)
            return self._cache[image_id]
        jpeg = self.index.get_thumbnails([image_id]).get(image_id)
        panel = None
        if jpeg:
            bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is not None:
                panel = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.width, self.height, _NO_MATCH_BG)
        if panel is None:
            logger.warning("image %d has no readable thumbnail", image_id)
        self._cache[image_id] = panel
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return panel


def _message_panel(width: int, height: int, title: str, detail: str | None = None) -> np.ndarray:
    """A dark panel with a large centred ``title`` and an optional smaller ``detail`` below it."""
    panel = np.empty((height, width, 3), np.uint8)
    panel[:] = _NO_MATCH_BG
    big = float(np.clip(height / 300.0, 0.5, 2.0))
    panel = label(panel, title, corner="center", scale=big, color=(255, 200, 90), box_alpha=0.0)
    if detail:
        lower = panel[height // 2 + round(22 * big) :]
        small = float(np.clip(height / 500.0, 0.4, 1.2))
        panel[height // 2 + round(22 * big) :] = label(
            lower, detail, corner="top-center", scale=small, color=(210, 210, 210), box_alpha=0.0
        )
    return panel


def render_match_video(
    index: Index,
    run_id: int,
    out: str | os.PathLike,
    *,
    threshold: float | None = None,
    max_frames: int | None = None,
    fps: float | None = None,
    panel_height: int = 360,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """The video of a stored match run: frame | best database image, frame by frame.

    The right panel shows the best match's thumbnail letterboxed (never stretched) with its
    file name and score; below ``threshold`` it shows a "no match ≥ T" panel instead (with the
    best candidate's name and score in small). The left panel carries the frame's time and
    number. Frames without a result of their own (skipped by stride / fps sampling) reuse the
    nearest previous result. No model is needed.

    Args:
        index: the :class:`db.Index` holding the run.
        run_id: the run.
        out: the .mp4 file to write.
        threshold: match threshold (default: the run's).
        max_frames: stop after this many frames.
        fps: output frame rate (default: the source's).
        panel_height: height of the panels in pixels.
        progress, cancel: progress callback and cancellation event.

    Raises:
        db.NotFoundError: no such run; VideoOpenError: the run's video is gone or unreadable;
        RenderError: the run has no frame results; InvalidArgumentError: bad options;
        Cancelled: ``cancel`` was set.
    """
    out = check_render_options(out, fps=fps, max_frames=max_frames, panel_height=panel_height)
    view = load_run(index, run_id)
    thr = view.params.threshold if threshold is None else float(threshold)
    if not -1.0 <= thr <= 1.0:
        raise InvalidArgumentError(f"threshold must be between -1 and 1 (cosine), got {thr}")
    video = view.video
    path = Path(video.path)
    if not path.is_file():
        raise VideoOpenError(
            str(path), f"run {run_id}'s video is no longer there (moved or deleted?); match the video again"
        )
    check_render_options(out, source=path)
    if video.size_bytes and path.stat().st_size != video.size_bytes:
        logger.warning("%s changed since run %d was made; the results may not fit its frames", path, run_id)
    res = view.results
    if len(res) == 0:
        raise RenderError(f"Run {run_id} has no frame results to render (status: {view.run.status})")
    limit = int(view.run.stats.get("decoded") or res.frame_index[-1] + 1)
    if max_frames is not None:
        limit = min(limit, max_frames)
    ph = _even(panel_height)
    pw = _even(ph * video.width / video.height) if video.width and video.height else ph * 16 // 9
    out_fps = fps or video.fps or DEFAULT_FPS
    ids = res.image_ids[:, 0] if res.k else np.full(len(res), -1, np.int64)
    scores = res.scores[:, 0] if res.k else np.full(len(res), np.nan, np.float32)
    thumbs = _Thumbnails(index, pw, ph)
    reporter = ProgressReporter("rendering", "frames", limit, progress, cancel)
    reporter.update(0)
    row = -1
    with VideoWriter(out, fps=out_fps) as writer:
        frames = iter_frames(path, max_frames=limit, size=(pw, ph))
        for n, frame in enumerate(background(frames, maxsize=8, name="match-video-decoder"), start=1):
            while row + 1 < len(res) and res.frame_index[row + 1] <= frame.index:
                row += 1
            left = label(_fit(frame.rgb, pw, ph), f"{format_time(frame.time_s)}  frame {frame.index}")
            right = _match_panel(view, thumbs, row, ids, scores, thr, pw, ph)
            writer.write(np.hstack([left, right]))
            if n % 8 == 0:
                reporter.update(n)
                reporter.check_cancelled()
    if writer.frames_written == 0:
        raise RenderError(f"{path}: no frames decoded")
    reporter.update(writer.frames_written)
    width, height = writer.size or (0, 0)
    logger.info("wrote %d matched frames of run %d to %s", writer.frames_written, run_id, out)
    return RenderResult(out, writer.frames_written, out_fps, width, height)


def _match_panel(
    view: RunView,
    thumbs: _Thumbnails,
    row: int,
    ids: np.ndarray,
    scores: np.ndarray,
    thr: float,
    pw: int,
    ph: int,
) -> np.ndarray:
    if row < 0:
        return _message_panel(pw, ph, "not analysed yet")
    image_id, score = int(ids[row]), float(scores[row])
    if image_id < 0 or not math.isfinite(score):
        return _message_panel(pw, ph, f"no match ≥ {thr:.2f}")
    name = view.image_name(image_id)
    if score < thr:
        return _message_panel(pw, ph, f"no match ≥ {thr:.2f}", f"best: {name} ({score:.3f})")
    thumb = thumbs.get(image_id)
    if thumb is None:
        return _message_panel(pw, ph, name, f"score {score:.3f} (no thumbnail)")
    return label(thumb, f"{name}\nscore {score:.3f}")
