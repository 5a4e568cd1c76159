"""Pure helpers that turn a stored run (:class:`core.runs.RunView`) into what the match page shows."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

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
    """``#12 · clip.mp4 → posters · done · every 5th frame · threshold 0.60 · 48/600 matched · 2025-01-31 14:02``:
    enough to tell apart runs of one video with other settings."""
    video = Path(run.video_path).name
    collection = run.collection_name or "(deleted collection)"
    when = run.created.replace("T", " ")[:16]
    parts = [f"#{run.id}", f"{video} → {collection}", run.status]
    sampling = (run.params or {}).get("sampling") or {}
    if sampling.get("mode"):
        parts.append(Sampling.from_dict(sampling).describe(short=True))
    if "threshold" in (run.params or {}):
        parts.append(f"threshold {float(run.params['threshold']):.2f}")
    stats = run.stats or {}
    if "matched" in stats and "recorded" in stats:
        parts.append(f"{stats['matched']:,}/{stats['recorded']:,} matched")
    parts.append(when)
    return " · ".join(parts)


def image_labels(view: RunView, image_ids: np.ndarray | None = None) -> dict[int, str]:
    """``image id -> file name`` of ``image_ids`` (default: every best match of the run)."""
    return view.image_names(view.best_image if image_ids is None else image_ids)


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
    """One row per segment: preview, image, from, to, peak, mean (plus duration, frames).

    The preview is the image's thumbnail from ``thumbnails`` (framed in its colour), or a square
    of its colour where there is none: either way the row shows the image's colour.
    """
    thumbnails = thumbnails or {}
    rows = []
    for seg in view.segments:
        jpeg = thumbnails.get(seg.image_id)
        row = {
            "preview": data_url(jpeg) if jpeg else swatch_url(seg.image_id),
            "image": view.image_name(seg.image_id),
            "from": format_time(seg.start_s),
            "to": format_time(seg.end_s),
            "peak": round(seg.peak_score, 4),
            "mean": round(seg.mean_score, 4),
            "duration (s)": round(seg.duration_s, 2),
            "frames": seg.frames,
            "start frame": seg.start_frame,
        }
        rows.append(row)
    return rows


def segment_table(view: RunView, thumbnails: dict[int, bytes] | None = None):
    """:func:`segment_rows` as a table whose previews travel once per image, not once per row.

    The preview column is categorical (Arrow dictionary-encoded): a run with 200 segments of 60
    images sends 60 previews. No pandas ``Styler``: it would send every cell twice.
    """
    import pandas as pd

    frame = pd.DataFrame(segment_rows(view, thumbnails))
    if "preview" in frame:
        frame["preview"] = frame["preview"].astype("category")
    return frame


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def swatch_url(image_id: int) -> str:
    """A square of the image's colour, as an SVG data URL (a preview where there is no thumbnail)."""
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' width='16' height='16'>"
        f"<rect width='16' height='16' rx='3' fill='{image_colour(image_id)}'/></svg>"
    )
    return "data:image/svg+xml;utf8," + quote(svg)


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
