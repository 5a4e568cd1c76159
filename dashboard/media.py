"""Small media helpers for pages: one frame of a video, images for display."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def short_count(n: int) -> str:
    """A count that fits a metric card: ``9,999``, ``12k``, ``1.0M`` (the exact figure goes in
    the card's help; ``1,000,000`` was cut to ``1,0…`` on the Home page)."""
    if abs(n) < 10_000:
        return f"{n:,}"
    value, unit = n / 1000, "k"
    for bigger in ("M", "B"):
        if abs(round(value, 1 if abs(value) < 10 else 0)) < 1000:  # as it will be shown
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f}{unit}" if abs(value) < 10 else f"{value:.0f}{unit}"


def figure_name(image_name: str, mode: str) -> str:
    """The file name of an image's maps figure: the image's own name and the mode
    (``poster-full-maps.png``), safe on any file system."""
    from dashboard.uploads import sanitize_filename

    return f"{sanitize_filename(Path(image_name).stem, 'image')}-{mode}-maps.png"


THUMB_BACKGROUND = (243, 245, 249)  # the theme's secondary background (.streamlit/config.toml)
GRID_PAGE_SIZES = (24, 48, 96)
GRID_PAGE_SIZE = 48
"""Thumbnails a page of Browse's grid shows: the choices, and the first one shown."""


def square_thumbnail(jpeg: bytes | None, size: int = 256) -> np.ndarray:
    """A stored thumbnail letterboxed into a ``size``×``size`` square, so that a grid of them
    lines up (captions and buttons at one height), whatever each picture's shape. A missing or
    unreadable thumbnail gives an empty square."""
    import cv2

    from core.visual.drawing import letterbox

    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) if jpeg else None
    if bgr is None:
        return np.full((size, size, 3), THUMB_BACKGROUND, np.uint8)
    return letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, size, THUMB_BACKGROUND)


def square_jpeg(jpeg: bytes | None, size: int = 256, quality: int = 90) -> bytes:
    """:func:`square_thumbnail` as JPEG bytes, which the page sends as they are (an array is
    encoded as PNG on every rerun: ~3 ms a thumbnail, 48 a page)."""
    import cv2

    ok, buf = cv2.imencode(
        ".jpg",
        cv2.cvtColor(square_thumbnail(jpeg, size), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, quality],
    )
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise RuntimeError("OpenCV could not encode a thumbnail as JPEG")
    return buf.tobytes()


def short_name(name: str, limit: int = 28) -> str:
    """A file name cut in the middle to ``limit`` characters (both ends stay readable), so that
    it fits one caption line."""
    if len(name) <= limit:
        return name
    keep = limit - 1
    return name[: (keep + 1) // 2] + "…" + name[len(name) - keep // 2 :]


def small_jpeg(
    jpeg: bytes, size: int = 64, quality: int = 80, frame: tuple[int, int, int] | None = None
) -> bytes | None:
    """A stored thumbnail shrunk to ``size`` px (longest side), as JPEG, optionally inside a
    ``frame`` of that colour: table previews travel inside the table's data, so they are kept to
    a few KB. None where the stored bytes are not a picture (the table shows a swatch)."""
    try:
        img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    except (UnidentifiedImageError, OSError):
        return None
    if frame is not None:
        border = max(2, size // 16)
        img.thumbnail((size - 2 * border, size - 2 * border))
        img = ImageOps.expand(img, border=border, fill=frame)
    else:
        img.thumbnail((size, size))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
