"""Small media helpers for pages: one frame of a video, images for display.

Reading one frame seeks to the key frame before it and decodes forward, so showing frame
50,000 of a long video costs a few dozen decoded frames, not 50,000.
"""

from __future__ import annotations

import io
import logging
import os
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from core.errors import VideoOpenError
from core.video import iter_frames

logger = logging.getLogger(__name__)


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    rotation %= 360
    return rgb if rotation == 0 else np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))


def read_frame(
    path: str | os.PathLike,
    frame_index: int,
    time_s: float,
    *,
    rotation: int = 0,
    max_width: int | None = 960,
) -> np.ndarray:
    """The frame shown at ``time_s`` (frame ``frame_index``) as upright RGB uint8.

    Seeks to the key frame before ``time_s`` and decodes forward to the first frame whose
    presentation time reaches it (times as :func:`core.video.iter_frames` reports them).
    Falls back to decoding from the start if the container cannot seek.

    Raises:
        VideoOpenError: the video cannot be opened or has no such frame.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoOpenError(path, "file not found (moved or deleted since the run?)")
    try:
        rgb = _seek_frame(path, float(time_s), rotation)
    except av.FFmpegError as err:
        logger.warning("%s: seeking failed (%s); decoding from the start", path, err)
        rgb = None
    if rgb is None:
        wanted = int(frame_index)
        for frame in iter_frames(path, select=lambda i, _t: i == wanted, max_frames=wanted + 1):
            rgb = frame.rgb
        if rgb is None:
            raise VideoOpenError(path, f"it has no frame {frame_index}")
    return shrink(rgb, max_width)


def _seek_frame(path: str, time_s: float, rotation: int) -> np.ndarray | None:
    with av.open(path) as container:
        if not container.streams.video:
            raise VideoOpenError(path, "the file has no video stream")
        stream = container.streams.video[0]
        tb = stream.time_base or Fraction(1, 1)
        start = stream.start_time or 0
        rate = stream.average_rate or stream.guessed_rate
        half_frame = 0.5 / float(rate) if rate else 0.02
        target = start + int((time_s - half_frame) / tb) if time_s > half_frame else start
        container.seek(max(target, start), stream=stream, backward=True, any_frame=False)
        last = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            last = frame
            if float((frame.pts - start) * tb) >= time_s - half_frame:
                break
        if last is None:
            return None
        return _upright(last.to_ndarray(format="rgb24"), rotation)


def shrink(rgb: np.ndarray, max_width: int | None) -> np.ndarray:
    """Scale an image down to ``max_width`` pixels wide (never up)."""
    if max_width is None or rgb.shape[1] <= max_width:
        return rgb
    import cv2

    height = max(1, round(rgb.shape[0] * max_width / rgb.shape[1]))
    return cv2.resize(rgb, (max_width, height), interpolation=cv2.INTER_AREA)


def jpeg_bytes(rgb: np.ndarray, quality: int = 88) -> bytes:
    """RGB uint8 → JPEG bytes (for ``st.image`` and downloads)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


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
