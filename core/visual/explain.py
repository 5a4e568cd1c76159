"""Where did a frame match? A heat map over the whole frame of where the matched image fits.

The map is region mode's own measure (:meth:`core.matching.regions.RegionSearch.fit_map`): the
frame's early patch tokens against the image's, as the mean patch cosine of the best window of
any size covering each patch. A run made with regions also has the stored box of the frame's
region; a run without shows the best window the map found.

>>> e = explain_frame(extractor, view, 120, index.get_thumbnails)   # doctest: +SKIP
>>> save_explanation(e, "frame120.png")                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import ImageLoadError, InvalidArgumentError
from core.matching.regions import DEFAULT_REGIONS, RegionSearch, RegionSettings, Thumbnails
from core.matching.runs import RunView, nearest_row
from core.media.images import load_image
from core.media.video import format_time, read_frame
from core.model.features import FeatureExtractor
from core.visual.colours import image_rgb
from core.visual.drawing import heatmap, label, letterbox, overlay
from core.visual.figures import check_png
from db import EmbeddingMatrix

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
HEAT_ALPHA = 0.55
HEAT_CMAP = "inferno"
PANEL_HEIGHT = 360


@dataclass(frozen=True, eq=False)
class Explanation:
    """One frame of a run, the image it is explained against and where that image fits.

    Attributes:
        heat: rows×cols map over the whole frame (mean patch cosine, higher: fits better).
        box: the run's stored region of this frame (region runs, when it shows this image).
        best_window: the window where the image fits best according to ``heat``.
    """

    frame: np.ndarray
    frame_index: int
    time_s: float
    image: np.ndarray
    image_id: int
    image_name: str
    score: float
    matched: bool
    heat: np.ndarray
    box: Box | None
    best_window: Box

    def heat_range(self) -> tuple[float, float]:
        return heat_range(self.heat)


def region_settings(view: RunView) -> RegionSettings:
    """The run's region settings (the defaults for a run made without regions)."""
    stored = view.run.params.get("regions")
    return RegionSettings.from_dict(stored) if isinstance(stored, dict) else DEFAULT_REGIONS


def explain_frame(
    extractor: FeatureExtractor,
    view: RunView,
    frame: int,
    thumbnails: Thumbnails,
    *,
    image_id: int | None = None,
    settings: RegionSettings | None = None,
    frame_reader: Callable[[str, int, float], np.ndarray] = read_frame,
) -> Explanation:
    """Explain one frame of a run: the recorded frame nearest to ``frame``.

    Args:
        extractor: the run's model (the collection's).
        thumbnails: the images' thumbnails (``index.get_thumbnails``).
        image_id: the image to explain the frame against (default: its best match).
        settings: region settings (default: the run's own, see :func:`region_settings`).

    Raises:
        InvalidArgumentError: the run has no results, or the frame has no candidate image.
        VideoOpenError: the video is gone or unreadable.
    """
    res = view.results
    if not len(res):
        raise InvalidArgumentError(f"Run {view.run.id} has no frame results to explain")
    row = nearest_row(res.frame_index, frame)
    frame_no, time_s = int(res.frame_index[row]), float(res.time_s[row])
    best = int(view.best_image[row])
    image = best if image_id is None else int(image_id)
    if image < 0:
        raise InvalidArgumentError(f"Frame {frame_no} of run {view.run.id} has no matching image to explain")
    rgb = frame_reader(view.video.path, frame_no, time_s)
    search = RegionSearch(
        extractor,
        EmbeddingMatrix(np.array([image], np.int64), np.zeros((1, extractor.hidden_size), np.float32), ""),
        thumbnails,
        settings or region_settings(view),
    )
    heat, window = search.fit_map(rgb, image)
    region = view.region_of(row)
    box = region[2] if region is not None and region[0] == image else None
    if image == best:
        score = float(view.best_score[row])
    else:  # its best score of the frame: in the top-k or as the region
        ids, scores = (a[row] for a in view.scored_images())
        score = float(np.nanmax(scores[ids == image])) if (ids == image).any() else float("nan")
    return Explanation(
        frame=rgb,
        frame_index=frame_no,
        time_s=time_s,
        image=_image_rgb(view, image, thumbnails),
        image_id=image,
        image_name=view.image_name(image),
        score=score,
        matched=bool(view.matched()[row]) and image == best,
        heat=heat,
        box=box,
        best_window=window,
    )


def _image_rgb(view: RunView, image_id: int, thumbnails: Thumbnails) -> np.ndarray:
    """The image's original file when it is still there, otherwise its thumbnail."""
    path = view.image_paths.get(image_id)
    if path:
        try:
            return load_image(path).rgb
        except (ImageLoadError, OSError) as err:
            logger.info("showing the thumbnail of image %d: %s", image_id, err)
    jpeg = thumbnails([image_id]).get(image_id)
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) if jpeg else None
    if bgr is None:
        return np.full((64, 64, 3), 24, np.uint8)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def draw_box(
    rgb: np.ndarray, box: Box, colour: tuple[int, int, int], *, thickness: int = 3, scale: float = 1.0
) -> np.ndarray:
    """A copy of ``rgb`` with a rectangle drawn on it (``box`` in frame pixels, times ``scale``)."""
    out = rgb.copy()
    x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
    cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
    return out


def heat_range(heat: np.ndarray) -> tuple[float, float]:
    """A map's colour range: its median to its maximum (the upper half is what stands out)."""
    lo, hi = float(np.median(heat)), float(np.max(heat))
    return (lo, hi) if hi > lo + 1e-6 else (lo - 0.05, lo + 0.05)


def draw_outline(rgb: np.ndarray, heat: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """``rgb`` (the frame at any size) with the outline of where ``heat`` is in its top quarter."""
    lo, hi = heat_range(heat)
    mask = (heat >= lo + 0.75 * (hi - lo)).astype(np.uint8)
    mask = cv2.resize(mask, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = rgb.copy()
    cv2.drawContours(out, contours, -1, colour, max(2, rgb.shape[0] // 180), cv2.LINE_AA)
    return out


def overlay_frame(e: Explanation, *, heat: bool = True, boxes: bool = True) -> np.ndarray:
    """The frame with the heat map blended over it and the boxes drawn (the region's in the
    image's colour, the best window in white)."""
    h, w = e.frame.shape[:2]
    out = e.frame
    if heat:
        lo, hi = e.heat_range()
        out = overlay(out, heatmap(e.heat, h, w, vmin=lo, vmax=hi, cmap=HEAT_CMAP), HEAT_ALPHA)
    if boxes:
        thick = max(2, h // 180)
        out = draw_box(out, e.best_window, (255, 255, 255), thickness=thick)
        if e.box is not None:
            out = draw_box(out, e.box, image_rgb(e.image_id), thickness=thick + 1)
    return out


def explanation_figure(e: Explanation, panel_height: int = PANEL_HEIGHT) -> np.ndarray:
    """frame | heat map overlay with boxes | the image, side by side, labelled (RGB uint8)."""
    h, w = e.frame.shape[:2]
    pw = max(2, round(panel_height * w / h))

    def fit(rgb: np.ndarray) -> np.ndarray:
        return cv2.resize(rgb, (pw, panel_height), interpolation=cv2.INTER_AREA)

    verdict = "matched" if e.matched else "not matched"
    left = label(fit(e.frame), f"frame {e.frame_index} at {format_time(e.time_s)}")
    kind = "region (coloured box) and " if e.box is not None else ""
    middle = label(fit(overlay_frame(e)), f"where it fits: {kind}best window (white)")
    right = letterbox(e.image, pw, panel_height)
    right = label(right, f"{e.image_name}\nscore {e.score:.3f} ({verdict})")
    return np.hstack([left, middle, right])


def save_explanation(e: Explanation, out: str | os.PathLike, panel_height: int = PANEL_HEIGHT) -> Path:
    """Write :func:`explanation_figure` as a PNG (folders created); returns the path.

    Raises:
        InvalidArgumentError: the name does not end in .png.
    """
    from PIL import Image

    path = check_png(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(explanation_figure(e, panel_height)).save(path)
    return path
