"""The layer-evolution video of one image: one frame per transformer layer, in PCA colours
fitted on the final layer (so a colour keeps its meaning through the network's depth)."""

from __future__ import annotations

import logging
import os
import threading

import numpy as np

from core.media.writer import VideoWriter
from core.model.features import FeatureExtractor
from core.model.preprocess import FULL_SHORT_SIDE
from core.progress import ProgressCallback, ProgressReporter
from core.visual.drawing import label, upscale_nearest
from core.visual.maps import layer_grids
from core.visual.render import RenderResult, check_positive, check_render_options, fit_to, panel_dims

logger = logging.getLogger(__name__)

LAYER_FPS = 2.0
"""Default frames (layers) per second."""
LAYER_PANEL = 448
"""Default panel height in pixels."""


def render_layers(
    extractor: FeatureExtractor,
    rgb: np.ndarray,
    out: str | os.PathLike,
    *,
    fps: float = LAYER_FPS,
    mode: str = "crop",
    short_side: int = FULL_SHORT_SIDE,
    panel_size: int = LAYER_PANEL,
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
    check_positive(panel_size, "panel size", 16)
    reporter = ProgressReporter("rendering", "layers", extractor.num_layers, progress, cancel)
    reporter.update(0, "running the model")
    view, grids = layer_grids(extractor, rgb, mode=mode, short_side=short_side)
    reporter.check_cancelled()
    rows, cols = grids[0].shape[:2]
    pw, ph = panel_dims(panel_size, rows, cols)
    image_panel = fit_to(view, pw, ph) if with_image else None
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
