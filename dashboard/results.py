"""Pure helpers that turn a stored run (:class:`core.runs.RunView`) into what the match page shows."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.matching.runs import RunView
from core.matching.runs import nearest_row as row_of_frame  # noqa: F401  (the pages' name for it)
from core.matching.sampling import DEFAULT_SAMPLING, Sampling
from core.media.video import format_time
from core.visual.colours import image_colour
from db import RunRecord

SAMPLING_MODES = {
    "auto": "Automatic: analyse frames that changed (fastest)",
    "every": "Every frame",
    "stride": "Every N-th frame",
    "fps": "Fixed rate (frames per second)",
}


STRIDE, RATE = 5, 2.0  # the values first offered for the stride and fixed-rate modes


def make_sampling(
    mode: str,
    *,
    stride: int = STRIDE,
    fps: float = RATE,
    max_interval_s: float = DEFAULT_SAMPLING.max_interval_s,
) -> Sampling:
    """The :class:`core.matching.sampling.Sampling` for the page's options (raises InvalidArgumentError)."""
    if mode == "every":
        return Sampling.every()
    if mode == "stride":
        return Sampling.every_nth(int(stride))
    if mode == "fps":
        return Sampling.rate(float(fps))
    if mode == "auto":
        return Sampling.auto(max_interval_s=float(max_interval_s))
    raise ValueError(f"unknown sampling mode {mode!r}")


def run_label(run: RunRecord) -> str:
    """``#12 · clip.mp4 → posters · done · 2025-01-31 14:02``."""
    video = Path(run.video_path).name
    collection = run.collection_name or "(deleted collection)"
    when = run.created.replace("T", " ")[:16]
    return f"#{run.id} · {video} → {collection} · {run.status} · {when}"


def image_labels(view: RunView) -> dict[int, str]:
    """``image id -> file name`` for every image the run mentions."""
    ids = view.results.image_ids
    return {int(i): view.image_name(int(i)) for i in np.unique(ids[ids >= 0])} if ids.size else {}


@dataclass(frozen=True, slots=True)
class FrameMatch:
    image_id: int
    name: str
    score: float
    rank: int


def frame_matches(view: RunView, row: int) -> list[FrameMatch]:
    """The top-k images of one recorded frame, best first."""
    res = view.results
    if not res.k:
        return []
    out = []
    for rank, (image_id, score) in enumerate(zip(res.image_ids[row], res.scores[row], strict=True), start=1):
        if image_id >= 0 and np.isfinite(score):
            out.append(FrameMatch(int(image_id), view.image_name(int(image_id)), float(score), rank))
    return out


def segment_rows(view: RunView, thumbnails: dict[int, bytes] | None = None) -> list[dict]:
    """One row per segment: image, from, to, peak, mean (plus duration, frames, a preview)."""
    rows = []
    for seg in view.segments:
        row = {
            "image": view.image_name(seg.image_id),
            "from": format_time(seg.start_s),
            "to": format_time(seg.end_s),
            "peak": round(seg.peak_score, 4),
            "mean": round(seg.mean_score, 4),
            "duration (s)": round(seg.duration_s, 2),
            "frames": seg.frames,
            "start frame": seg.start_frame,
        }
        if thumbnails is not None:
            jpeg = thumbnails.get(seg.image_id)
            row = {"preview": data_url(jpeg) if jpeg else None, **row}
        rows.append(row)
    return rows


def segment_table(view: RunView, thumbnails: dict[int, bytes] | None = None):
    """:func:`segment_rows` as a styled table: each image's name in its own colour."""
    import pandas as pd

    frame = pd.DataFrame(segment_rows(view, thumbnails))
    colours = [f"color: {image_colour(seg.image_id)}; font-weight: 600" for seg in view.segments]
    return frame.style.apply(lambda _column: colours, subset=["image"])


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def run_summary(view: RunView) -> str:
    """One line about a run's work: frames, model passes, time."""
    stats = view.run.stats or {}
    parts = [f"{len(view.results):,} frames with results"]
    if "computed" in stats:
        parts.append(f"{stats['computed']:,} model passes")
    if stats.get("cached"):
        parts.append(f"{stats['cached']:,} from cache")
    if stats.get("inherited"):
        parts.append(f"{stats['inherited']:,} inherited from similar frames")
    if "elapsed_s" in stats:
        parts.append(f"{stats['elapsed_s']:.1f} s")
    sampling = (view.run.params or {}).get("sampling") or {}
    if sampling.get("description"):
        parts.append(f"sampling: {sampling['description']}")
    return " · ".join(parts)
