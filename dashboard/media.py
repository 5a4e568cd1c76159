"""Small media helpers for pages: one frame of a video, images for display."""

from __future__ import annotations

import io
import logging
import os

import numpy as np
from PIL import Image

from core.media import video

logger = logging.getLogger(__name__)


def read_frame(
    path: str | os.PathLike,
    frame_index: int,
    time_s: float,
    *,
    max_width: int | None = 960,
) -> np.ndarray:
    """One frame of a video (:func:`core.video.read_frame`), scaled down for display.

    Raises:
        VideoOpenError: the video cannot be opened (moved or deleted since the run?) or has no
            such frame.
    """
    return shrink(video.read_frame(path, frame_index, time_s), max_width)


def shrink(rgb: np.ndarray, max_width: int | None) -> np.ndarray:
    """Scale an image down to ``max_width`` pixels wide (never up)."""
    if max_width is None or rgb.shape[1] <= max_width:
        return rgb
    import cv2

    height = max(1, round(rgb.shape[0] * max_width / rgb.shape[1]))
    return cv2.resize(rgb, (max_width, height), interpolation=cv2.INTER_AREA)


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


def human_size(n_bytes: float) -> str:
    """``1.4 MB`` style sizes."""
    size = float(n_bytes)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover
