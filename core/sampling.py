"""Which frames of a video get a model pass.

Four modes:

- ``every``: every decoded frame is analysed;
- ``stride``: every N-th frame is analysed, the others are skipped (no result);
- ``fps``: frames are analysed at a target rate (frames per second of video), others skipped;
- ``auto``: change-driven. Every frame gets a result, but only frames that changed since the
  last analysed frame get a model pass; the others *inherit* that frame's result (stored with
  their source frame). Shot cuts are always analysed and a maximum interval forces a refresh.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import cv2
import numpy as np

from core.errors import InvalidArgumentError

SamplingMode = Literal["every", "stride", "fps", "auto"]

# The change measure works on a tiny grey thumbnail: cheap, and blind to noise and compression.
_THUMB_W, _THUMB_H = 32, 18


@dataclass(frozen=True, slots=True)
class Sampling:
    """How frames are chosen for analysis. Build with the class methods."""

    mode: SamplingMode = "auto"
    stride: int = 1
    fps: float | None = None
    change_threshold: float = 0.06  # mean abs thumbnail change (0..1) vs the last analysed frame
    cut_threshold: float = 0.18  # change vs the previous frame that marks a shot cut
    max_interval_s: float = 1.0  # analyse at least this often in auto mode

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
        cls, *, change_threshold: float = 0.06, cut_threshold: float = 0.18, max_interval_s: float = 1.0
    ) -> Sampling:
        if not 0 < change_threshold <= cut_threshold <= 1:
            raise InvalidArgumentError("need 0 < change threshold ≤ cut threshold ≤ 1")
        if max_interval_s <= 0:
            raise InvalidArgumentError(f"max interval must be positive, got {max_interval_s}")
        return cls(
            mode="auto", change_threshold=change_threshold, cut_threshold=cut_threshold, max_interval_s=max_interval_s
        )

    def describe(self) -> str:
        if self.mode == "every":
            return "every frame"
        if self.mode == "stride":
            return f"every {self.stride}th frame" if self.stride != 1 else "every frame"
        if self.mode == "fps":
            return f"{self.fps:g} frames per second"
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

    def planner(self) -> FramePlanner:
        return FramePlanner(self)


@dataclass(frozen=True, slots=True)
class Decision:
    analyse: bool  # True: needs an embedding of its own; False: inherits `source`
    source: int  # frame index whose embedding gives this frame's result
    reason: str  # "first" | "sampled" | "cut" | "change" | "refresh" | "static"


class FramePlanner:
    """Stateful per-video decisions; feed frames in presentation order."""

    def __init__(self, sampling: Sampling) -> None:
        self.sampling = sampling
        self._next_t = 0.0
        self._prev: np.ndarray | None = None
        self._ref: np.ndarray | None = None
        self._ref_index = -1
        self._ref_time = -math.inf

    @property
    def needs_every_frame(self) -> bool:
        """Whether every frame must be converted to pixels (auto mode looks at each)."""
        return self.sampling.mode in ("every", "auto")

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
            return Decision(True, index, "sampled")
        if rgb is None:
            raise ValueError("auto sampling needs the frame's pixels")
        thumb = change_thumbnail(rgb)
        s = self.sampling
        reason = ""
        if self._ref is None:
            reason = "first"
        else:
            cut = float(np.mean(np.abs(thumb - self._prev))) if self._prev is not None else 0.0
            if cut >= s.cut_threshold:
                reason = "cut"
            elif float(np.mean(np.abs(thumb - self._ref))) >= s.change_threshold:
                reason = "change"
            elif time_s - self._ref_time >= s.max_interval_s - 1e-6:
                reason = "refresh"
        self._prev = thumb
        if reason:
            self._ref, self._ref_index, self._ref_time = thumb, index, time_s
            return Decision(True, index, reason)
        return Decision(False, self._ref_index, "static")


def change_thumbnail(rgb: np.ndarray) -> np.ndarray:
    """The tiny grey float image (0..1) the change measure compares."""
    small = cv2.resize(rgb, (_THUMB_W, _THUMB_H), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return grey.astype(np.float32) / 255.0
