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

``auto`` also spends its analyses where the match is uncertain. The pipeline reports each
analysed frame's best and runner-up scores back (:meth:`FramePlanner.observe`), and the
planner compares them with the run's threshold:

- *sure*: the best score is at least ``sure_margin`` from the threshold and, above it, leads the
  runner-up by at least ``sure_lead``: the frame's content may change more
  (``sure_change_threshold``) and wait longer (``sure_max_interval_s``) before a new analysis;
- *unsure*: the best score is within ``unsure_margin`` of the threshold, or above it with a
  runner-up within ``unsure_lead``: looked at again sooner (``unsure_change_threshold``,
  ``unsure_max_interval_s``);
- otherwise, or before the result is known, the plain rule (``change_threshold``,
  ``max_interval_s``) applies.

A result counts from ``feedback_lag`` frames after its frame on: the pipeline decodes ahead
of the model, and this fixed lag keeps the decisions (and so the run) the same however fast
the machine is. Where the planner needs a result that is not in yet, it waits for it.

The defaults come from a sweep on generated videos (``python -m bench.agreement --tune``) and
are checked on other generated videos (``python -m bench --sections agreement``): see the
Performance section of README.md.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from core.errors import InvalidArgumentError
from core.matching.params import matched_mask

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
# (python -m bench.agreement --tune): see the Performance section of README.md.
DEFAULT_CHANGE_THRESHOLD = 0.08
DEFAULT_CUT_THRESHOLD = 0.15
DEFAULT_MAX_INTERVAL_S = 8.0
DEFAULT_CERTAINTY = {
    "sure_margin": 0.02,
    "sure_lead": 0.08,
    "sure_change_threshold": 0.14,
    "sure_max_interval_s": 20.0,
    "unsure_margin": 0.02,
    "unsure_lead": 0.03,
    "unsure_change_threshold": 0.05,
    "unsure_max_interval_s": 2.0,
}
DEFAULT_FEEDBACK_LAG = 15  # frames (half a second at 30 fps)


@dataclass(frozen=True, slots=True)
class Sampling:
    """How frames are chosen for analysis. Build with the class methods."""

    mode: SamplingMode = "auto"
    stride: int = 1
    fps: float | None = None
    change_threshold: float = DEFAULT_CHANGE_THRESHOLD  # change (0..1) vs the last analysed frame
    cut_threshold: float = DEFAULT_CUT_THRESHOLD  # change vs the previous frame that marks a shot cut
    max_interval_s: float = DEFAULT_MAX_INTERVAL_S  # analyse at least this often in auto mode
    # certainty (auto mode, when the planner knows the run's threshold): see the module docstring
    sure_margin: float = DEFAULT_CERTAINTY["sure_margin"]
    sure_lead: float = DEFAULT_CERTAINTY["sure_lead"]
    sure_change_threshold: float = DEFAULT_CERTAINTY["sure_change_threshold"]
    sure_max_interval_s: float = DEFAULT_CERTAINTY["sure_max_interval_s"]
    unsure_margin: float = DEFAULT_CERTAINTY["unsure_margin"]
    unsure_lead: float = DEFAULT_CERTAINTY["unsure_lead"]
    unsure_change_threshold: float = DEFAULT_CERTAINTY["unsure_change_threshold"]
    unsure_max_interval_s: float = DEFAULT_CERTAINTY["unsure_max_interval_s"]
    feedback_lag: int = DEFAULT_FEEDBACK_LAG  # frames before an analysed frame's result counts

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
        **certainty: float,
    ) -> Sampling:
        """Change-driven sampling; ``certainty`` overrides the fields named in
        :data:`DEFAULT_CERTAINTY` (and ``feedback_lag``)."""
        unknown = set(certainty) - set(DEFAULT_CERTAINTY) - {"feedback_lag"}
        if unknown:
            raise InvalidArgumentError(f"unknown sampling options: {', '.join(sorted(unknown))}")
        out = cls(
            mode="auto",
            change_threshold=change_threshold,
            cut_threshold=cut_threshold,
            max_interval_s=max_interval_s,
            **certainty,  # type: ignore[arg-type]
        )
        for change in (out.change_threshold, out.sure_change_threshold, out.unsure_change_threshold):
            if not 0 < change <= out.cut_threshold <= 1:
                raise InvalidArgumentError("need 0 < change thresholds ≤ cut threshold ≤ 1")
        for interval in (out.max_interval_s, out.sure_max_interval_s, out.unsure_max_interval_s):
            if interval <= 0:
                raise InvalidArgumentError(f"max interval must be positive, got {interval}")
        if out.feedback_lag < 1:
            raise InvalidArgumentError(f"feedback lag must be ≥ 1 frame, got {out.feedback_lag}")
        return out

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
            f"refresh every {self.max_interval_s:g} s; sure {self.sure_change_threshold:g} / "
            f"{self.sure_max_interval_s:g} s, unsure {self.unsure_change_threshold:g} / "
            f"{self.unsure_max_interval_s:g} s)"
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.mode != "auto":
            for key in (
                "change_threshold",
                "cut_threshold",
                "max_interval_s",
                "feedback_lag",
                *DEFAULT_CERTAINTY,
            ):
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

    def planner(
        self, preprocessing: Preprocessing | None = None, *, threshold: float | None = None
    ) -> FramePlanner:
        """A fresh planner for one video; with ``preprocessing``, ``auto`` compares only the
        part of the frame that the model sees; with the run's ``threshold``, ``auto`` also
        samples by certainty (the caller then reports results with :meth:`FramePlanner.observe`)."""
        return FramePlanner(self, preprocessing, threshold=threshold)


DEFAULT_SAMPLING = Sampling()
"""The default: change-driven with the defaults above (for parsers and widgets)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Analyse a frame or let it inherit, and why.

    Reasons of analysed frames: ``first``, ``sampled`` (every / stride / fps), ``cut``,
    ``change``, ``refresh`` (the maximum interval passed), ``unsure`` (the last result was
    uncertain: the plain rule would have waited). Of inherited frames: ``static`` (nothing
    changed enough), ``sure`` (the last result was certain: the plain rule would have analysed).
    """

    analyse: bool  # True: needs an embedding of its own; False: inherits `source`
    source: int  # frame index whose embedding gives this frame's result
    reason: str


Certainty = Literal["sure", "unsure", "unknown"]


class FramePlanner:
    """Stateful per-video decisions; feed frames in presentation order.

    Thread-safe for one deciding thread (the decoder) and one reporting thread (the model's):
    :meth:`observe` and :meth:`close` may be called from another thread than :meth:`decide`.
    """

    def __init__(
        self,
        sampling: Sampling,
        preprocessing: Preprocessing | None = None,
        *,
        threshold: float | None = None,
    ) -> None:
        self.sampling = sampling
        self.preprocessing = preprocessing
        self.threshold = threshold if sampling.mode == "auto" else None
        self.reasons: Counter[str] = Counter()  # why frames were analysed or inherited
        self._next_t = 0.0
        self._box: tuple[int, int, int, int] | None = None
        self._shape: tuple[int, ...] | None = None
        self._prev: _Thumb | None = None
        self._ref: _Thumb | None = None
        self._ref_index = -1
        self._ref_time = -math.inf
        self._ref_certainty: Certainty | None = None  # None: the reference's result is not in yet
        self._results: dict[int, tuple[float, float]] = {}  # analysed frame → (best, runner-up)
        self._reported = threading.Condition()
        self._closed = False

    @property
    def max_pending(self) -> int | None:
        """The most frames a caller may hold back before it reports their results (a batch of
        frame results must be closed within this many frames), or None without feedback."""
        return self.sampling.feedback_lag if self.threshold is not None else None

    def observe(self, index: int, best: float, runner_up: float) -> None:
        """Report an analysed frame's best and runner-up scores (NaN where there is none)."""
        if self.threshold is None:
            return
        with self._reported:
            self._results[int(index)] = (float(best), float(runner_up))
            self._reported.notify_all()

    def close(self) -> None:
        """No more results will come (the run ended or failed): stop waiting for them."""
        with self._reported:
            self._closed = True
            self._reported.notify_all()

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
        else:
            certainty = self._certainty(index)
            plain = self._reason(thumb, time_s, s.change_threshold, s.max_interval_s)
            if certainty == "sure":
                reason = self._reason(thumb, time_s, s.sure_change_threshold, s.sure_max_interval_s)
                if plain and not reason:
                    self.reasons["sure"] += 1
                    self._prev = thumb
                    return Decision(False, self._ref_index, "sure")
            elif certainty == "unsure":
                reason = self._reason(thumb, time_s, s.unsure_change_threshold, s.unsure_max_interval_s)
                reason = reason if plain or not reason else "unsure"
            else:
                reason = plain
        self._prev = thumb
        if reason:
            self._ref, self._ref_index, self._ref_time = thumb, index, time_s
            self._ref_certainty = None
            self.reasons[reason] += 1
            return Decision(True, index, reason)
        self.reasons["static"] += 1
        return Decision(False, self._ref_index, "static")

    def _reason(self, thumb: _Thumb, time_s: float, change_threshold: float, interval_s: float) -> str:
        """``change``, ``refresh`` or "" (inherit) under one rule."""
        assert self._ref is not None
        if thumb.differs(self._ref, change_threshold):
            return "change"
        if time_s - self._ref_time >= interval_s - 1e-6:
            return "refresh"
        return ""

    def _certainty(self, index: int) -> Certainty:
        """How sure the last analysed frame's result is, once it counts (``feedback_lag`` frames
        after that frame); waits for the result when it is due but not reported yet."""
        if self.threshold is None or index - self._ref_index < self.sampling.feedback_lag:
            return "unknown"
        if self._ref_certainty is not None:
            return self._ref_certainty
        with self._reported:
            self._reported.wait_for(lambda: self._ref_index in self._results or self._closed)
            result = self._results.pop(self._ref_index, None)
            # results of frames before the reference are never needed again
            for old in [i for i in self._results if i < self._ref_index]:
                del self._results[old]
        self._ref_certainty = (
            "unknown" if result is None else certainty(*result, self.threshold, self.sampling)
        )
        return self._ref_certainty

    def _view_box(self, rgb: np.ndarray) -> tuple[int, int, int, int]:
        if self._box is None or rgb.shape[:2] != self._shape:
            h, w = rgb.shape[:2]
            box = (0.0, 0.0, 1.0, 1.0) if self.preprocessing is None else self.preprocessing.view_box(h, w)
            x0, y0 = int(round(box[0] * w)), int(round(box[1] * h))
            x1, y1 = max(x0 + 1, int(round(box[2] * w))), max(y0 + 1, int(round(box[3] * h)))
            self._box, self._shape = (x0, y0, x1, y1), rgb.shape[:2]
        return self._box


def certainty(best: float, runner_up: float, threshold: float, sampling: Sampling) -> Certainty:
    """How sure a frame's result is (see the module docstring); NaN runner-up: no lead known."""
    distance = abs(best - threshold)
    lead = best - runner_up if math.isfinite(runner_up) else math.nan
    if not math.isfinite(best):
        return "unknown"
    above = bool(matched_mask(np.array([best]), threshold)[0])  # the one threshold rule
    if distance < sampling.unsure_margin or (above and lead < sampling.unsure_lead):
        return "unsure"
    if distance >= sampling.sure_margin and (not above or lead >= sampling.sure_lead):
        return "sure"
    return "unknown"


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
    (sx, sy), response = _estimated_shift(a.grey, b.grey)
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


def _estimated_shift(a: np.ndarray, b: np.ndarray) -> tuple[tuple[float, float], float]:
    """Phase correlation of two grey thumbnails seen through a Hann window: the shift
    ``(dx, dy)`` with ``b(x, y) ≈ a(x - dx, y - dy)`` and the peak's strength (OpenCV's
    response, 1 for a pure shift).

    The window is applied here, not passed to ``cv2.phaseCorrelate``: with a window argument
    OpenCV (4.14 and 5.0 alike) returned a different shift and response on every call for the
    same two images, so the same video could get different decisions from one run to the next.
    """
    return cv2.phaseCorrelate(a * _WINDOW, b * _WINDOW)


def change(a: np.ndarray, b: np.ndarray) -> float:
    """The change measure between two thumbnails from :func:`change_thumbnail` (0..1)."""
    return _compensated(_Thumb(a), _Thumb(b))
