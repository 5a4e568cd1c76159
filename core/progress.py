"""Progress reporting and cancellation shared by the CLI, the dashboard and the pipeline.

Long jobs take a ``progress`` callback and a ``cancel`` event. The CLI turns events into a
tqdm bar; the dashboard writes them to a shared object that a fragment polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import WebSSLError


class Cancelled(WebSSLError):
    """The user cancelled the job; what was finished so far is kept."""


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    stage: str  # e.g. "indexing", "matching", "rendering"
    done: int
    total: int | None  # None when unknown
    unit: str  # "images", "frames"
    message: str = ""
    elapsed_s: float = 0.0

    @property
    def headline(self) -> str:
        """``Loading model… · detail``: how a stage without a count reads."""
        return " · ".join(filter(None, [f"{self.stage.capitalize()}…", self.message]))

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)

    @property
    def eta_s(self) -> float | None:
        if not self.total or self.done <= 0 or self.elapsed_s <= 0:
            return None
        return (self.total - self.done) / self.rate


ProgressCallback = Callable[[ProgressEvent], None]


def announce(progress: ProgressCallback | None, stage: str, message: str = "") -> None:
    """Say that a stage without a count has begun (loading the model, the collection…), so that
    a user sees what is happening from the first second."""
    if progress is not None:
        progress(ProgressEvent(stage, 0, None, "", message))


class ProgressReporter:
    """Builds events with elapsed time; calls the callback (if any) and checks cancellation."""

    def __init__(
        self,
        stage: str,
        unit: str,
        total: int | None,
        callback: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.stage, self.unit, self.total = stage, unit, total
        self.callback = callback
        self.cancel = cancel
        self.start = time.perf_counter()
        self.done = 0

    def update(self, done: int, message: str = "") -> None:
        self.done = done
        if self.callback is not None:
            self.callback(
                ProgressEvent(
                    self.stage, done, self.total, self.unit, message, time.perf_counter() - self.start
                )
            )

    def check_cancelled(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"{self.stage} cancelled after {self.done} {self.unit}")

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start
