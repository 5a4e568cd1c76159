"""What every rendered video shares: the result type, up-front option checks and panel sizes.

Every render writes its frames one at a time to :class:`core.media.writer.VideoWriter`
(H.264, ``yuv420p``, ``+faststart``: plays in Chrome and Firefox ``<video>`` elements).
Nothing holds a video's frames in a list: memory depends on the batch size and panel size,
not on the video's length. The renders: :mod:`core.visual.layer_video` (one frame per layer
of an image), :mod:`core.visual.pca_video` (colour-stable PCA of a video),
:mod:`core.visual.match_video` (frame | best match of a run).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import InvalidArgumentError, WebSSLError

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v"})
DEFAULT_FPS = 25.0  # when a video does not say its frame rate
PANEL_HEIGHT = 360
"""Default height in pixels of a video render's panels."""


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
    check_positive(max_frames, "max frames")
    check_positive(panel_height, "panel height", 16)
    check_positive(fit_samples, "fit samples")
    check_positive(batch_size, "batch size")
    return path


def check_positive(value: int | None, what: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise InvalidArgumentError(f"{what} must be ≥ {minimum}, got {value}")


def even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def panel_dims(height: int, rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of a panel ``height`` pixels high showing a rows×cols grid, even sides."""
    return even(height * cols / rows), even(height)


def fit_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to exactly width×height (callers pass sizes of the same aspect ratio)."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    interp = cv2.INTER_AREA if width < rgb.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interp)
