"""The options of a match run and the one rule that decides whether a frame matched.

Every default of matching lives here (and in :class:`core.matching.sampling.Sampling` for the
choice of frames): the CLI, the dashboard and the README take them from these types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from core.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class MatchParams:
    """Options of a match run.

    Attributes:
        threshold: best score at or above which a frame counts as matched (cosine, -1..1).
            The original examples recommend 0.6–0.7.
        top_k: how many images are kept per frame, best first.
        gap_tolerance_s: a segment survives interruptions (frames below threshold or showing
            another image) up to this long.
        min_duration_s: segments shorter than this are dropped.
    """

    threshold: float = 0.6
    top_k: int = 5
    gap_tolerance_s: float = 0.5
    min_duration_s: float = 0.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise InvalidArgumentError(f"threshold must be between -1 and 1 (cosine), got {self.threshold}")
        if self.top_k < 1:
            raise InvalidArgumentError(f"top-k must be ≥ 1, got {self.top_k}")
        if self.gap_tolerance_s < 0 or self.min_duration_s < 0:
            raise InvalidArgumentError("gap tolerance and minimum duration must be ≥ 0")

    def to_dict(self) -> dict:
        return asdict(self)

    def updated(self, **changes: float | int | None) -> MatchParams:
        """A copy with the given fields changed; ``None`` values keep the current value."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, d: dict) -> MatchParams:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def matched(self, best_score: np.ndarray) -> np.ndarray:
        """Boolean per frame: matched at this threshold (see :func:`matched_mask`)."""
        return matched_mask(best_score, self.threshold)


DEFAULTS = MatchParams()
"""The default options (``DEFAULTS.threshold``, ...), for parsers and widgets."""


def matched_mask(best_score: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean per frame: the best score is at or above the threshold (NaN: no match).

    The one place that applies a threshold to scores.
    """
    sc = np.asarray(best_score, np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(sc) & (sc >= threshold)
