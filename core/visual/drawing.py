"""A small drawing kit for pictures and video frames: heat maps, overlays, letterboxing, labels.

Numpy in, numpy out (RGB ``uint8``).
"""

from __future__ import annotations

import unicodedata
from typing import Literal

import cv2
import numpy as np

from core.errors import InvalidArgumentError

Corner = Literal[
    "top-left", "top-right", "bottom-left", "bottom-right", "top-center", "bottom-center", "center"
]
_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right", "top-center", "bottom-center", "center")


def upscale_nearest(grid_rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Enlarge a patch grid (rows×cols or rows×cols×C) to height×width, nearest neighbour (blocky)."""
    if height < 1 or width < 1:
        raise ValueError(f"target size must be positive, got {width}×{height}")
    grid = np.ascontiguousarray(grid_rgb)
    return cv2.resize(grid, (int(width), int(height)), interpolation=cv2.INTER_NEAREST_EXACT)


def _colormap_lut(cmap: str) -> np.ndarray:
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError as err:
        raise InvalidArgumentError(f"unknown colour map {cmap!r}") from err
    return np.rint(colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def heatmap(
    values: np.ndarray,
    height: int,
    width: int,
    *,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "viridis",
) -> np.ndarray:
    """A rows×cols value grid as an H×W×3 uint8 colour image (nearest-neighbour, one block a patch).

    Values are scaled from ``vmin..vmax`` to the colour map and clipped; NaN is drawn black.
    """
    v = np.asarray(values, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"expected a rows×cols grid of values, got shape {v.shape}")
    if not vmax > vmin:
        raise InvalidArgumentError(f"vmax must be greater than vmin, got {vmin}..{vmax}")
    nan = ~np.isfinite(v)
    idx = np.rint(np.clip((np.nan_to_num(v) - vmin) / (vmax - vmin), 0.0, 1.0) * 255).astype(np.uint8)
    rgb = _colormap_lut(cmap)[idx]
    rgb[nan] = 0
    return upscale_nearest(rgb, height, width)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heat map over an image (both H×W×3 uint8; ``heat`` is resized if its size differs)."""
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgumentError(f"alpha must be in 0..1, got {alpha}")
    img = _check_rgb(image)
    h = _check_rgb(heat, "heat")
    if h.shape[:2] != img.shape[:2]:
        h = cv2.resize(h, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    out = img.astype(np.float32) * (1.0 - alpha) + h.astype(np.float32) * alpha
    return np.rint(out).astype(np.uint8)


def letterbox(
    rgb: np.ndarray, width: int, height: int, color: tuple[int, int, int] = (24, 24, 24)
) -> np.ndarray:
    """Fit an image into width×height keeping its aspect ratio (never stretched), centred on ``color``."""
    img = _check_rgb(rgb)
    if width < 1 or height < 1:
        raise ValueError(f"target size must be positive, got {width}×{height}")
    h, w = img.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(img, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else img
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = np.asarray(color, np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    return canvas


# OpenCV 5 draws Unicode text with its built-in fonts; older versions draw ASCII only (Hershey).
_CV2_UNICODE = int(cv2.__version__.split(".")[0]) >= 5


def _drawable(text: str) -> str:
    """The text as cv2 can draw it: unchanged on OpenCV ≥ 5, transliterated to ASCII before."""
    if _CV2_UNICODE:
        return text
    for sym, rep in (("≥", ">="), ("≤", "<="), ("×", "x"), ("–", "-"), ("—", "-"), ("…", "...")):
        text = text.replace(sym, rep)
    folded = unicodedata.normalize("NFKD", text)
    # accents (combining marks) are dropped; characters with no ASCII form (CJK, emoji) become '?'
    return "".join(ch if ch.isascii() else ("" if unicodedata.combining(ch) else "?") for ch in folded)


def label(
    rgb: np.ndarray,
    text: str,
    *,
    corner: Corner = "top-left",
    scale: float | None = None,
    color: tuple[int, int, int] = (255, 255, 255),
    box_alpha: float = 0.65,
) -> np.ndarray:
    """Draw ``text`` (lines split on ``\\n``) on a dark translucent box; returns a new image.

    Args:
        rgb: H×W×3 uint8.
        text: the label (OpenCV < 5 draws ASCII only: other characters are transliterated).
        corner: "top-left", "top-right", "bottom-left", "bottom-right", "top-center",
            "bottom-center" or "center".
        scale: cv2 font scale; default from the image height (readable at 224..1080 px).
        color: text colour.
        box_alpha: opacity of the black box behind the text.
    """
    if corner not in _CORNERS:
        raise InvalidArgumentError(f"corner must be one of {', '.join(_CORNERS)}, got {corner!r}")
    out = _check_rgb(rgb).copy()
    h, w = out.shape[:2]
    if scale is None:
        scale = float(np.clip(h / 620.0, 0.35, 1.2))
    thickness = 1 if scale < 0.75 else 2
    font = cv2.FONT_HERSHEY_SIMPLEX
    pad = max(3, round(6 * scale))
    gap = max(2, round(5 * scale))
    margin = max(2, round(6 * scale))
    room = w - 2 * pad - 2 * margin
    lines = [_fit_line(_drawable(line), font, scale, thickness, room) for line in text.split("\n")]
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    line_h = max(sz[0][1] + sz[1] for sz in sizes)
    box_w = min(w, max(sz[0][0] for sz in sizes) + 2 * pad)
    box_h = min(h, len(lines) * line_h + (len(lines) - 1) * gap + 2 * pad)
    if corner.endswith("left"):
        x0 = margin
    elif corner.endswith("right"):
        x0 = w - box_w - margin
    else:
        x0 = (w - box_w) // 2
    if corner.startswith("top"):
        y0 = margin
    elif corner.startswith("bottom"):
        y0 = h - box_h - margin
    else:
        y0 = (h - box_h) // 2
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(w, x0 + box_w), min(h, y0 + box_h)
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.rint(region * (1.0 - box_alpha)).astype(np.uint8)
    y = y0 + pad
    for line, ((_, th), _baseline) in zip(lines, sizes, strict=True):
        y_text = y + th
        cv2.putText(out, line, (x0 + pad, y_text), font, scale, color, thickness, cv2.LINE_AA)
        y += line_h + gap
    return out


def _fit_line(line: str, font: int, scale: float, thickness: int, max_width: int) -> str:
    """Shorten a line that is too wide by cutting its middle (file names keep both ends)."""
    if cv2.getTextSize(line, font, scale, thickness)[0][0] <= max_width or len(line) <= 4:
        return line
    dots = "..." if not _CV2_UNICODE else "…"
    keep = len(line) - 1
    while keep > 2:
        head = (keep + 1) // 2
        candidate = line[:head] + dots + line[len(line) - (keep - head) :]
        if cv2.getTextSize(candidate, font, scale, thickness)[0][0] <= max_width:
            return candidate
        keep -= 1
    return line[:1] + dots


def _check_rgb(rgb: np.ndarray, name: str = "image") -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB {name}, got shape {arr.shape} dtype {arr.dtype}")
    return arr
