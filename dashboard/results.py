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
    """One image the inspector lists for a frame: its best region's (``kind`` "region") or one of
    the whole frame's top-k (``kind`` "frame", ``rank`` 1..k); ``best``: the frame's best match."""

    image_id: int
    name: str
    score: float
    rank: int
    kind: str = "frame"
    best: bool = False


def frame_matches(view: RunView, row: int) -> list[FrameMatch]:
    """The images of one recorded frame: its region first (region runs), then the whole frame's
    top-k, best first."""
    res = view.results
    wins = bool(view.region_wins[row])
    out = []
    region = view.region_of(row)
    if region is not None:
        out.append(FrameMatch(region[0], view.image_name(region[0]), region[1], 1, "region", wins))
    if not res.k:
        return out
    for rank, (image_id, score) in enumerate(zip(res.image_ids[row], res.scores[row], strict=True), start=1):
        if image_id >= 0 and np.isfinite(score):
            name = view.image_name(int(image_id))
            out.append(FrameMatch(int(image_id), name, float(score), rank, "frame", rank == 1 and not wins))
    return out


@dataclass(frozen=True, slots=True)
class SegmentListSpec:
    """What the segments list (:mod:`dashboard.segment_list`) draws: one entry per segment, in
    time order, column by column, and each image's preview once (a run with 200 segments of 60
    images sends 60 previews).

    Attributes:
        images: the images shown, in order of first appearance: (id, name, colour, preview URL).
        image: per segment, its image's place in ``images``.
        current: the segment that holds the inspected frame (highlighted; of overlapping ones, the
            one that starts last), or None.
    """

    images: tuple[tuple[int, str, str, str], ...]
    image: tuple[int, ...]
    start_s: tuple[float, ...]
    end_s: tuple[float, ...]
    peak: tuple[float, ...]
    mean: tuple[float, ...]
    frames: tuple[int, ...]
    start_frame: tuple[int, ...]
    current: int | None

    def __len__(self) -> int:
        return len(self.image)

    def to_data(self) -> dict:
        """The spec as the JSON the component receives, with each time also as text."""
        return {
            "images": [list(i) for i in self.images],
            "image": list(self.image),
            "start_s": list(self.start_s),
            "end_s": list(self.end_s),
            "start_text": [format_time(t) for t in self.start_s],
            "end_text": [format_time(t) for t in self.end_s],
            "peak": list(self.peak),
            "mean": list(self.mean),
            "frames": list(self.frames),
            "start_frame": list(self.start_frame),
            "current": self.current,
        }


def segment_list_spec(
    view: RunView, thumbnails: dict[int, bytes] | None = None, frame: int | None = None
) -> SegmentListSpec:
    """The run's segments for the segments list, with the segment that holds ``frame``.

    Each image's preview is its thumbnail from ``thumbnails`` (framed in its colour), or a square
    of its colour where there is none.
    """
    thumbnails = thumbnails or {}
    place: dict[int, int] = {}
    images = []
    for seg in view.segments:
        if seg.image_id not in place:
            place[seg.image_id] = len(images)
            jpeg = thumbnails.get(seg.image_id)
            preview = data_url(jpeg) if jpeg else swatch_url(seg.image_id)
            images.append((seg.image_id, view.image_name(seg.image_id), image_colour(seg.image_id), preview))
    segs = view.segments
    # segments may overlap where gaps were joined: the one that starts last (the one clicked)
    holding = [n for n, s in enumerate(segs) if frame is not None and s.start_frame <= frame <= s.end_frame]
    current = max(holding, key=lambda n: segs[n].start_frame) if holding else None
    return SegmentListSpec(
        images=tuple(images),
        image=tuple(place[s.image_id] for s in segs),
        start_s=tuple(round(s.start_s, 3) for s in segs),
        end_s=tuple(round(s.end_s, 3) for s in segs),
        peak=tuple(round(s.peak_score, 4) for s in segs),
        mean=tuple(round(s.mean_score, 4) for s in segs),
        frames=tuple(s.frames for s in segs),
        start_frame=tuple(s.start_frame for s in segs),
        current=current,
    )


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
