"""The PCA video of a video: every frame's patch features in one set of PCA colours, fitted on
patches sampled across the whole video, so a colour means the same thing from the first frame
to the last."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import numpy as np

from core.media.video import format_time, iter_frames, probe_video
from core.media.writer import VideoWriter
from core.model.features import FeatureExtractor
from core.model.frames import frame_batches
from core.model.preprocess import FULL_SHORT_SIDE, Preprocessing, input_view
from core.prefetch import background
from core.progress import ProgressCallback, ProgressReporter
from core.visual.drawing import label, upscale_nearest
from core.visual.pca import PcaColorizer, border_mask
from core.visual.render import (
    DEFAULT_FPS,
    PANEL_HEIGHT,
    RenderError,
    RenderResult,
    check_positive,
    check_render_options,
    fit_to,
    panel_dims,
)

logger = logging.getLogger(__name__)

MAX_FIT_PATCHES = 16384  # patch samples kept for the video PCA fit (all sampled frames together)
FIT_SAMPLES = 32
"""Default number of frames, spread over the video, that the colours are fitted on."""


@dataclass(frozen=True, eq=False)
class VideoPca:
    """A colorizer fitted on patches sampled across a video."""

    colorizer: PcaColorizer
    preprocessing: Preprocessing
    frame_indices: tuple[int, ...]  # the frames whose patches were sampled
    samples: int  # patch features the PCA was fitted on
    grid: tuple[int, int]  # (rows, cols) of the frames' patch grid


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
    chosen = set(wanted)
    batches = frame_batches(
        str(video_path), prep, batch_size, select=lambda i, _t: i in chosen, max_frames=max(wanted) + 1
    )
    for batch in batches:
        if not len(batch):
            continue
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
        used.extend(batch.index.tolist())
        if reporter is not None:
            reporter.update(reporter.done + len(batch.index))
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
    short_side: int = FULL_SHORT_SIDE,
    fit_samples: int = FIT_SAMPLES,
    max_frames: int | None = None,
    batch_size: int | None = None,
    background_threshold: float | None = None,
    max_patches: int = MAX_FIT_PATCHES,
) -> VideoPca:
    """Fit a :class:`~core.visual.pca.PcaColorizer` on patches of ``fit_samples`` frames spread
    evenly over the video (its first ``max_frames`` frames), so colours mean the same thing from
    the first frame to the last. At most ``max_patches`` patch features are kept (a random subset
    of each sampled frame's patches when there are more).

    Raises:
        VideoOpenError: the video cannot be opened; InvalidArgumentError: bad options.
    """
    check_positive(fit_samples, "fit samples")
    check_positive(max_frames, "max frames")
    prep = extractor.preprocessing.for_mode(mode, short_side)
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
    panel_height: int = PANEL_HEIGHT,
    fit_samples: int = FIT_SAMPLES,
    batch_size: int | None = None,
    mode: str = "crop",
    short_side: int = FULL_SHORT_SIDE,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """A video of the final-layer patch features of every frame, in colour-stable PCA colours.

    Two passes: (1) ``fit_samples`` frames spread across the video are run through the model and
    a :class:`~core.visual.pca.PcaColorizer` is fitted on their patches; (2) all frames (up to
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
        mode, short_side: "crop" or "full" (see :func:`core.visual.maps.image_maps`).
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
    prep = extractor.preprocessing.for_mode(mode, short_side)
    batch_size = batch_size or extractor.batch_size
    total, source_fps = _frame_total(video_path, max_frames)
    out_fps = fps or source_fps or DEFAULT_FPS
    if not fps and not source_fps:
        logger.warning("%s does not say its frame rate; writing %g fps", video_path, DEFAULT_FPS)
    n_fit = len(_sample_indices(total, fit_samples))
    # two stages, each with its own count: the frames the colours are fitted on, then every frame
    fitting = ProgressReporter("fitting colours", "frames", n_fit, progress, cancel)
    fitting.update(0)
    fitted = _fit_video_pca(
        extractor,
        video_path,
        prep,
        total,
        fit_samples=fit_samples,
        batch_size=batch_size,
        background_threshold=None,
        max_patches=MAX_FIT_PATCHES,
        reporter=fitting,
    )
    reporter = ProgressReporter("rendering", "frames", total, progress, cancel)
    reporter.update(0)
    rows, cols = fitted.grid
    pw, ph = panel_dims(panel_height, rows, cols)
    done = 0
    with VideoWriter(out, fps=out_fps) as writer:
        producer = frame_batches(str(video_path), prep, batch_size, max_frames=max_frames)
        for batch in background(producer, maxsize=2, name="pca-video-decoder"):
            reporter.check_cancelled()
            if not len(batch):
                continue
            feats = extractor.forward(batch.pixels, patches=True)
            assert feats.patches is not None
            colours = fitted.colorizer.transform(feats.patches)  # B×rows×cols×3
            views = input_view(batch.pixels, prep) if side_by_side else None
            for j, (i, t) in enumerate(zip(batch.index.tolist(), batch.time.tolist(), strict=True)):
                panel = upscale_nearest(colours[j], ph, pw)
                frame = panel if views is None else np.hstack([fit_to(views[j], pw, ph), panel])
                writer.write(label(frame, f"frame {i}  {format_time(t)}"))
            done += len(batch.index)
            reporter.update(done)
    width, height = writer.size or (0, 0)
    if writer.frames_written == 0:
        raise RenderError(f"{video_path}: no frames decoded")
    logger.info("wrote %d PCA frames to %s", writer.frames_written, out)
    return RenderResult(out, writer.frames_written, out_fps, width, height)
