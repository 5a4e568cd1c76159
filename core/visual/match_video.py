"""The video of a match run: each frame beside its best matching image, as the run sees it.

The run comes as a :class:`~core.matching.runs.RunView`, already seen with the threshold the
user chose: which frames matched is the view's decision (never re-applied here), so the video
agrees with the timeline and the exports. No model is needed.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from core.errors import VideoOpenError
from core.matching.runs import RunView
from core.media.files import video_file_state
from core.media.video import format_time, iter_frames
from core.media.writer import VideoWriter
from core.prefetch import background
from core.progress import ProgressCallback, ProgressReporter
from core.visual.colours import image_rgb
from core.visual.drawing import label, letterbox
from core.visual.explain import draw_box, draw_outline
from core.visual.render import (
    DEFAULT_FPS,
    PANEL_HEIGHT,
    RenderError,
    RenderResult,
    check_render_options,
    even,
    fit_to,
)

logger = logging.getLogger(__name__)

_NO_MATCH_BG = (24, 24, 24)
_THUMB_CACHE = 64  # letterboxed thumbnails kept (a run shows few distinct images)
_BORDER = 6  # pixels of the matched image's colour around its panel

Thumbnails = Callable[[Sequence[int]], dict[int, bytes]]
"""``thumbnails(image_ids) -> {id: JPEG bytes}``, e.g. :meth:`db.Index.get_thumbnails`."""
FitMap = Callable[[np.ndarray, int], tuple[np.ndarray, tuple[float, float, float, float]]]
"""``fit_map(frame, image_id) -> (heat map, best window)``: :meth:`core.matching.regions.RegionSearch.fit_map`."""


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
    view: RunView,
    thumbnails: Thumbnails,
    out: str | os.PathLike,
    *,
    max_frames: int | None = None,
    fps: float | None = None,
    panel_height: int = PANEL_HEIGHT,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    boxes: bool = False,
    outline: FitMap | None = None,
) -> RenderResult:
    """Frame | best database image, frame by frame, for a run seen with ``view``'s options.

    The right panel shows the best match's thumbnail letterboxed (never stretched), framed in
    the image's colour (:func:`core.visual.colours.image_rgb`, as on the timeline) with its
    file name and score; frames the view does not count as matched show a "no match ≥ T" panel
    instead (with the best candidate's name and score in small). The left panel carries the
    frame's time and number. Frames without a result of their own (skipped by stride / fps
    sampling) reuse the nearest previous result.

    Args:
        view: the run (``load_run(...).relabel(threshold=...)``).
        thumbnails: where the images' thumbnails come from (``index.get_thumbnails``).
        out: the .mp4 file to write.
        max_frames: stop after this many frames.
        fps: output frame rate (default: the source's).
        panel_height: height of the panels in pixels.
        progress, cancel: progress callback and cancellation event.
        boxes: draw each matched frame's region box (runs made with regions; no model).
        outline: draw the outline of where the matched image fits (its heat map, see
            :mod:`core.visual.explain`); this runs the model's first blocks once per recorded
            frame.

    Raises:
        VideoOpenError: the run's video is gone or unreadable; RenderError: the run has no
        frame results; InvalidArgumentError: bad options; Cancelled: ``cancel`` was set.
    """
    out = check_render_options(out, fps=fps, max_frames=max_frames, panel_height=panel_height)
    video, res, run_id = view.video, view.results, view.run.id
    path = Path(video.path)
    if not path.is_file():
        raise VideoOpenError(
            str(path), f"run {run_id}'s video is no longer there (moved or deleted?); match the video again"
        )
    check_render_options(out, source=path)
    if video_file_state(video) != "ok":
        logger.warning("%s changed since run %d was made; the results may not fit its frames", path, run_id)
    if len(res) == 0:
        raise RenderError(f"Run {run_id} has no frame results to render (status: {view.run.status})")
    limit = int(view.run.stats.get("decoded") or res.frame_index[-1] + 1)
    if max_frames is not None:
        limit = min(limit, max_frames)
    ph = even(panel_height)
    pw = even(ph * video.width / video.height) if video.width and video.height else ph * 16 // 9
    out_fps = fps or video.fps or DEFAULT_FPS
    panel = _Panels(view, thumbnails, pw, ph)
    reporter = ProgressReporter("rendering", "frames", limit, progress, cancel)
    reporter.update(0)
    row = -1
    with VideoWriter(out, fps=out_fps) as writer:
        frames = iter_frames(path, max_frames=limit, size=(pw, ph))
        for n, frame in enumerate(background(frames, maxsize=8, name="match-video-decoder"), start=1):
            while row + 1 < len(res) and res.frame_index[row + 1] <= frame.index:
                row += 1
            left = panel.mark(fit_to(frame.rgb, pw, ph), row, boxes=boxes, outline=outline)
            left = label(left, f"{format_time(frame.time_s)}  frame {frame.index}")
            writer.write(np.hstack([left, panel(row)]))
            if n % 8 == 0:
                reporter.update(n)
                reporter.check_cancelled()
    if writer.frames_written == 0:
        raise RenderError(f"{path}: no frames decoded")
    reporter.update(writer.frames_written)
    width, height = writer.size or (0, 0)
    logger.info("wrote %d matched frames of run %d to %s", writer.frames_written, run_id, out)
    return RenderResult(out, writer.frames_written, out_fps, width, height)


class _Panels:
    """The right-hand panel of each recorded frame of a view."""

    def __init__(self, view: RunView, thumbnails: Thumbnails, width: int, height: int) -> None:
        self.view, self.thumbnails, self.width, self.height = view, thumbnails, width, height
        self.matched = view.matched()
        self.ids, self.scores = view.best_image, view.best_score
        self.thumb = functools.lru_cache(maxsize=_THUMB_CACHE)(self._thumb)
        self._heat: tuple[int, np.ndarray] | None = None  # the last recorded frame's map

    def mark(self, left: np.ndarray, row: int, *, boxes: bool, outline: FitMap | None) -> np.ndarray:
        """The frame panel with the matched image's region box and/or heat-map outline."""
        if row < 0 or not self.matched[row] or not (boxes or outline):
            return left
        image_id = int(self.ids[row])
        colour = image_rgb(image_id)
        if outline is not None:
            if self._heat is None or self._heat[0] != row:
                self._heat = (row, outline(left, image_id)[0])
            left = draw_outline(left, self._heat[1], colour)
        region = self.view.region_of(row) if boxes else None
        if region is not None and region[0] == image_id:
            scale = self.width / self.view.video.width if self.view.video.width else 1.0
            left = draw_box(left, region[2], colour, thickness=max(2, self.height // 120), scale=scale)
        return left

    def _thumb(self, image_id: int) -> np.ndarray | None:
        jpeg = self.thumbnails([image_id]).get(image_id)
        rgb = None
        if jpeg:
            bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is not None:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if rgb is None:
            logger.warning("image %d has no readable thumbnail", image_id)
            return None
        b = _BORDER
        framed = np.empty((self.height, self.width, 3), np.uint8)
        framed[:] = image_rgb(image_id)
        framed[b:-b, b:-b] = letterbox(rgb, self.width - 2 * b, self.height - 2 * b, _NO_MATCH_BG)
        return framed

    def __call__(self, row: int) -> np.ndarray:
        w, h = self.width, self.height
        thr = self.view.params.threshold
        if row < 0:
            return _message_panel(w, h, "not analysed yet")
        image_id, score = int(self.ids[row]), float(self.scores[row])
        if image_id < 0 or not math.isfinite(score):
            return _message_panel(w, h, f"no match ≥ {thr:.2f}")
        name = self.view.image_name(image_id)
        if not self.matched[row]:
            return _message_panel(w, h, f"no match ≥ {thr:.2f}", f"best: {name} ({score:.3f})")
        thumb = self.thumb(image_id)
        if thumb is None:
            return _message_panel(w, h, name, f"score {score:.3f} (no thumbnail)")
        return label(thumb, f"{name}\nscore {score:.3f}")
