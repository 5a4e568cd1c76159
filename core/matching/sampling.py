"""Which frames of a video get a model pass.

Four modes:

- ``every``: every decoded frame is analysed;
- ``stride``: every N-th frame is analysed, the others are skipped (no result);
- ``fps``: frames are analysed at a target rate (frames per second of video), others skipped;
- ``auto``: change-driven. Every frame gets a result, but only frames that changed since the
  last analysed frame get a model pass; the others *inherit* that frame's result (stored with
  their source frame). Shot cuts are always analysed and a maximum interval forces a refresh.

The change measure of ``auto`` looks only at what the model sees (the centre crop of the
preprocessing, when there is one) through a 48×48 blurred colour thumbnail, and it forgives
camera motion: the global shift between two thumbnails is estimated by phase correlation,
and the difference is measured on the overlapping part after the shift, plus a share of the
view that the motion uncovered. A pan or a hand-held shake over the same picture therefore
costs few model passes, while a cut, a dissolve, a zoom or new content entering the view
does not go unnoticed. It costs about 0.3 ms a frame.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from core.errors import InvalidArgumentError

if TYPE_CHECKING:
    from core.model.preprocess import Preprocessing

SamplingMode = Literal["every", "stride", "fps", "auto"]

# The change measure's thumbnail: the model's view resized to a small square, blurred so that
# noise, compression and sub-pixel motion do not count.
_THUMB = 48
_BLUR_SIGMA = 1.0
_UNCOVERED_WEIGHT = 0.25  # change per unit of the view uncovered by camera motion
_MIN_RESPONSE = 0.05  # phase-correlation peaks weaker than this are not trusted
_WINDOW = cv2.createHanningWindow((_THUMB, _THUMB), cv2.CV_32F)

# Defaults of the change-driven mode, chosen with the benchmark's agreement sweep
# (python -m bench --help): see the Performance section of README.md.
DEFAULT_CHANGE_THRESHOLD = 0.05
DEFAULT_CUT_THRESHOLD = 0.15
DEFAULT_MAX_INTERVAL_S = 3.0


@dataclass(frozen=True, slots=True)
class Sampling:
    """How frames are chosen for analysis. Build with the class methods."""

    mode: SamplingMode = "auto"
    stride: int = 1
    fps: float | None = None
    change_threshold: float = DEFAULT_CHANGE_THRESHOLD  # change (0..1) vs the last analysed frame
    cut_threshold: float = DEFAULT_CUT_THRESHOLD  # change vs the previous frame that marks a shot cut
    max_interval_s: float = DEFAULT_MAX_INTERVAL_S  # analyse at least this often in auto mode

    @classmethod
    def every(cls) -> Sampling:
        return cls(mode="every")

    @classmethod
    def every_nth(cls, n: int) -> Sampling:
        if n < 1:
            raise InvalidArgumentError(f"--stride must be ≥ 1, got {n}")
        return cls(mode="stride", stride=int(n))

    @classmethod
    def rate(cls, fps: float) -> Sampling:
        if not (fps > 0 and math.isfinite(fps)):
            raise InvalidArgumentError(f"--fps must be a positive number, got {fps}")
        return cls(mode="fps", fps=float(fps))

    @classmethod
    def auto(
        cls,
        *,
        change_threshold: float = DEFAULT_CHANGE_THRESHOLD,
        cut_threshold: float = DEFAULT_CUT_THRESHOLD,
        max_interval_s: float = DEFAULT_MAX_INTERVAL_S,
    ) -> Sampling:
        if not 0 < change_threshold <= cut_threshold <= 1:
            raise InvalidArgumentError("need 0 < change threshold ≤ cut threshold ≤ 1")
        if max_interval_s <= 0:
            raise InvalidArgumentError(f"max interval must be positive, got {max_interval_s}")
        return cls(
            mode="auto",
            change_threshold=change_threshold,
            cut_threshold=cut_threshold,
            max_interval_s=max_interval_s,
        )

    def describe(self, *, short: bool = False) -> str:
        """What frames are analysed, in words (``short``: without the change-driven thresholds)."""
        if self.mode == "every":
            return "every frame"
        if self.mode == "stride":
            return f"every {self.stride}th frame" if self.stride != 1 else "every frame"
        if self.mode == "fps":
            return f"{self.fps:g} frames per second"
        if short:
            return f"change-driven (refresh {self.max_interval_s:g} s)"
        return (
            f"change-driven (change ≥ {self.change_threshold:g}, cut ≥ {self.cut_threshold:g}, "
            f"refresh every {self.max_interval_s:g} s)"
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.mode != "auto":
            for key in ("change_threshold", "cut_threshold", "max_interval_s"):
                d.pop(key)
        if self.mode != "stride":
            d.pop("stride")
        if self.mode != "fps":
            d.pop("fps")
        d["description"] = self.describe()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Sampling:
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**fields)

    def planner(self, preprocessing: Preprocessing | None = None) -> FramePlanner:
        """A fresh planner for one video; with ``preprocessing``, ``auto`` compares only the
        part of the frame that the model sees."""
        return FramePlanner(self, preprocessing)


DEFAULT_SAMPLING = Sampling()
"""The default: change-driven with the defaults above (for parsers and widgets)."""


@dataclass(frozen=True, slots=True)
class Decision:
    analyse: bool  # True: needs an embedding of its own; False: inherits `source`
    source: int  # frame index whose embedding gives this frame's result
    reason: str  # "first" | "sampled" | "cut" | "change" | "refresh" | "static"


class FramePlanner:
    """Stateful per-video decisions; feed frames in presentation order."""

    def __init__(self, sampling: Sampling, preprocessing: Preprocessing | None = None) -> None:
        self.sampling = sampling
        self.preprocessing = preprocessing
        self.reasons: Counter[str] = Counter()  # why frames were analysed ("static": inherited)
        self._next_t = 0.0
        self._box: tuple[int, int, int, int] | None = None
        self._shape: tuple[int, ...] | None = None
        self._prev: _Thumb | None = None
        self._ref: _Thumb | None = None
        self._ref_index = -1
        self._ref_time = -math.inf

    def wants(self, index: int, time_s: float) -> bool:
        """Cheap pre-filter before pixel conversion: False means the frame is skipped."""
        s = self.sampling
        if s.mode == "stride":
            return index % s.stride == 0
        if s.mode == "fps":
            assert s.fps is not None
            # Pick the first frame at or after each tick of the target rate (half a ms slack
            # absorbs timestamp rounding).
            if time_s + 5e-4 >= self._next_t:
                self._next_t = (math.floor((time_s + 5e-4) * s.fps) + 1) / s.fps
                return True
            return False
        return True

    def decide(self, index: int, time_s: float, rgb: np.ndarray | None) -> Decision:
        """Analyse or inherit, for a frame that :meth:`wants` accepted."""
        if self.sampling.mode != "auto":
            self.reasons["sampled"] += 1
            return Decision(True, index, "sampled")
        if rgb is None:
            raise ValueError("auto sampling needs the frame's pixels")
        return self.decide_thumbnail(index, time_s, change_thumbnail(rgb, self._view_box(rgb)))

    def view_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The pixel box ``(x0, y0, x1, y1)`` of a frame of this size that the change measure
        compares: the part the model sees."""
        return self._view_box(np.empty((height, width, 0), np.uint8))

    def decide_thumbnail(self, index: int, time_s: float, thumbnail: np.ndarray) -> Decision:
        """:meth:`decide` for a frame given by its :func:`change_thumbnail` (auto mode)."""
        if self.sampling.mode != "auto":
            self.reasons["sampled"] += 1
            return Decision(True, index, "sampled")
        thumb = _Thumb(thumbnail)
        s = self.sampling
        reason = ""
        if self._ref is None:
            reason = "first"
        elif self._prev is not None and thumb.differs(self._prev, s.cut_threshold):
            reason = "cut"
        elif thumb.differs(self._ref, s.change_threshold):
            reason = "change"
        elif time_s - self._ref_time >= s.max_interval_s - 1e-6:
            reason = "refresh"
        self._prev = thumb
        if reason:
            self._ref, self._ref_index, self._ref_time = thumb, index, time_s
            self.reasons[reason] += 1
            return Decision(True, index, reason)
        self.reasons["static"] += 1
        return Decision(False, self._ref_index, "static")

    def _view_box(self, rgb: np.ndarray) -> tuple[int, int, int, int]:
        if self._box is None or rgb.shape[:2] != self._shape:
            h, w = rgb.shape[:2]
            box = (0.0, 0.0, 1.0, 1.0) if self.preprocessing is None else self.preprocessing.view_box(h, w)
            x0, y0 = int(round(box[0] * w)), int(round(box[1] * h))
            x1, y1 = max(x0 + 1, int(round(box[2] * w))), max(y0 + 1, int(round(box[3] * h)))
            self._box, self._shape = (x0, y0, x1, y1), rgb.shape[:2]
        return self._box


class _Thumb:
    """A frame as the change measure sees it: blurred colour and grey 48×48 float images."""

    __slots__ = ("colour", "grey")

    def __init__(self, colour: np.ndarray) -> None:
        self.colour = colour
        self.grey = cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)

    def differs(self, other: _Thumb, limit: float) -> bool:
        """Whether :func:`change` from ``other`` to this reaches ``limit`` (the costlier
        motion-compensated measure runs only when the plain difference reaches it)."""
        plain = float(np.mean(np.abs(self.colour - other.colour)))
        return plain >= limit and _compensated(other, self) >= limit


def change_thumbnail(rgb: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The small blurred colour image (48×48×3 float32, 0..1) the change measure compares.

    Args:
        rgb: H×W×3 uint8 frame.
        box: optional ``(x0, y0, x1, y1)`` pixel box, the part of the frame the model sees.
    """
    if box is not None:
        x0, y0, x1, y1 = box
        rgb = rgb[y0:y1, x0:x1]
    small = cv2.resize(np.ascontiguousarray(rgb), (_THUMB, _THUMB), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small.astype(np.float32) * (1 / 255), (0, 0), _BLUR_SIGMA)


def _compensated(a: _Thumb, b: _Thumb) -> float:
    """Change from ``a`` to ``b`` (0..1) that forgives a global shift (pan, shake).

    The smaller of the plain mean absolute difference and, after aligning the two by the
    shift that phase correlation finds, the difference over the overlap plus
    ``_UNCOVERED_WEIGHT`` × the share of the view that is new.
    """
    plain = float(np.mean(np.abs(a.colour - b.colour)))
    (sx, sy), response = cv2.phaseCorrelate(a.grey, b.grey, _WINDOW)
    dx, dy = int(round(sx)), int(round(sy))
    n = _THUMB
    if response < _MIN_RESPONSE or (dx == 0 and dy == 0) or abs(dx) >= n // 2 or abs(dy) >= n // 2:
        return plain
    # b(x, y) ≈ a(x - dx, y - dy) on the overlap
    ax0, ax1, ay0, ay1 = max(0, -dx), min(n, n - dx), max(0, -dy), min(n, n - dy)
    overlap_a = a.colour[ay0:ay1, ax0:ax1]
    overlap_b = b.colour[ay0 + dy : ay1 + dy, ax0 + dx : ax1 + dx]
    residual = float(np.mean(np.abs(overlap_a - overlap_b)))
    uncovered = 1.0 - (ax1 - ax0) * (ay1 - ay0) / (n * n)
    return min(plain, residual + _UNCOVERED_WEIGHT * uncovered)


def change(a: np.ndarray, b: np.ndarray) -> float:
    """The change measure between two thumbnails from :func:`change_thumbnail` (0..1)."""
    return _compensated(_Thumb(a), _Thumb(b))
