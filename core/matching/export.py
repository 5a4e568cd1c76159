"""Exports of a match run: JSON (one document), CSV (one row per frame and rank), and the editor
formats of :mod:`core.matching.timelines` (EDL, OpenTimelineIO, WebVTT); :data:`EXPORT_FORMATS`
lists them all for the CLI and the dashboard."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.matching.timelines import edl_text, otio_text, vtt_text

if TYPE_CHECKING:
    from core.matching.runs import RunView

CSV_COLUMNS = (
    "run_id",
    "frame_index",
    "time_s",
    "source_frame",
    "inherited",
    "matched",
    "rank",
    "image",
    "path",
    "score",
)
REGION_COLUMNS = ("kind", "x0", "y0", "x1", "y1")
"""Added to a region run's CSV: ``frame`` rows are the whole frame's matches by rank, a
``region`` row is the frame's best region with its box (left, top, right, bottom, frame pixels)."""


def _num(x: float, digits: int = 6) -> float | None:
    x = float(x)
    return None if not math.isfinite(x) else round(x, digits)


def run_to_dict(view: RunView) -> dict[str, Any]:
    """The run as a JSON-ready dict (see README for the format)."""
    r, v, res = view.run, view.video, view.results
    matched = view.matched()
    region_ids, region_scores, region_boxes = view.region_arrays()
    names = view.image_names(view.scored_images()[0])  # once per image, not per frame and rank
    frames = []
    # rows as Python lists, read once: a 2-hour run has 216,000 frames
    for row, (ids, scores) in enumerate(zip(res.image_ids.tolist(), res.scores.tolist(), strict=True)):
        matches = [
            {"image": names[i], "path": view.image_paths.get(i), "image_id": i, "score": _num(s)}
            for i, s in zip(ids, scores, strict=True)
            if i >= 0
        ]
        frames.append(
            {
                "frame_index": int(res.frame_index[row]),
                "time_s": _num(res.time_s[row], 4),
                "source_frame": int(res.source_frame[row]),
                "inherited": bool(res.source_frame[row] != res.frame_index[row]),
                "matched": bool(matched[row]),
                "matches": matches,
                **(
                    {"region": _region(view, region_ids[row], region_scores[row], region_boxes[row])}
                    if view.has_regions
                    else {}
                ),
            }
        )
    segments = [
        {
            "image": view.image_name(s.image_id),
            "path": view.image_paths.get(s.image_id),
            "image_id": s.image_id,
            "start_frame": s.start_frame,
            "end_frame": s.end_frame,
            "start_s": _num(s.start_s, 4),
            "end_s": _num(s.end_s, 4),
            "peak_score": _num(s.peak_score),
            "mean_score": _num(s.mean_score),
            "frames": s.frames,
        }
        for s in view.segments
    ]
    p = view.params
    return {
        "run_id": r.id,
        "created": r.created,
        "status": r.status,
        "complete": view.complete,
        "note": view.incomplete_note() or None,
        "video": {
            "path": v.path,
            "sha256": v.sha256,
            "fps": _num(v.fps, 4),
            "frame_count": v.frame_count,
            "duration_s": _num(v.duration_s, 4),
            "width": v.width,
            "height": v.height,
        },
        "collection": r.collection_name,
        "model": r.model_id,
        "threshold": p.threshold,
        "top_k": p.top_k,
        "gap_tolerance_s": p.gap_tolerance_s,
        "min_duration_s": p.min_duration_s,
        "sampling": r.params.get("sampling"),
        "precision": r.params.get("precision"),
        "regions": r.params.get("regions"),
        "stats": view.stats,
        "frames": frames,
        "segments": segments,
    }


def _region(view: RunView, image_id: int, score: float, box: np.ndarray) -> dict[str, Any] | None:
    """A frame's best region: image, score and box (left, top, right, bottom in frame pixels)."""
    if image_id < 0:
        return None
    return {
        "image": view.image_name(int(image_id)),
        "image_id": int(image_id),
        "score": _num(score),
        "box": [_num(x, 2) for x in box],
    }


def json_text(view: RunView) -> str:
    """The run as a JSON document (see :func:`run_to_dict`)."""
    return json.dumps(run_to_dict(view), indent=2, allow_nan=False)


def write_json(view: RunView, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json_text(view))
    return out


def csv_text(view: RunView) -> str:
    """The run as CSV: one row per frame and rank (a frame with no results gets one empty row);
    a region run also has a row per frame with a region (:data:`REGION_COLUMNS`)."""
    buf = io.StringIO()
    write_csv_to(view, buf)
    return buf.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text_cell(text: object) -> str:
    """A text cell that a spreadsheet shows as text, never runs as a formula (OWASP's rule:
    a cell starting with = + - @ tab or CR gets a leading apostrophe). For names and paths
    from files only: numbers (scores can be negative) are written as they are."""
    value = "" if text is None else str(text)
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def write_csv_to(view: RunView, fh) -> None:
    res = view.results
    matched = view.matched()
    regions = view.has_regions
    region_ids, region_scores, region_boxes = view.region_arrays()
    no_box = ["frame", "", "", "", ""] if regions else []
    writer = csv.writer(fh, lineterminator="\r\n")  # RFC 4180: a name with CR or LF is quoted
    writer.writerow(CSV_COLUMNS + REGION_COLUMNS if regions else CSV_COLUMNS)

    cells = {  # an image's name and path cells, made once per image, not per frame and rank
        i: (csv_text_cell(name), csv_text_cell(view.image_paths.get(i, "")))
        for i, name in view.image_names(view.scored_images()[0]).items()
    }

    def match(rank: int, iid: int, score: float) -> list:
        return [rank, *cells[iid], f"{score:.6f}"]

    # rows as Python lists, read once: a 2-hour run has 216,000 frames
    for row, (ids, scores) in enumerate(zip(res.image_ids.tolist(), res.scores.tolist(), strict=True)):
        fi, src = int(res.frame_index[row]), int(res.source_frame[row])
        base = [view.run.id, fi, f"{res.time_s[row]:.4f}", src, int(src != fi), int(matched[row])]
        ranks = [rank for rank, iid in enumerate(ids) if iid >= 0]
        if not ranks:
            writer.writerow([*base, "", "", "", "", *no_box])
        for rank in ranks:
            writer.writerow([*base, *match(rank + 1, ids[rank], scores[rank]), *no_box])
        if regions and region_ids[row] >= 0:
            box = [f"{x:.2f}" for x in region_boxes[row]]
            writer.writerow([*base, *match(1, int(region_ids[row]), region_scores[row]), "region", *box])


def write_csv(view: RunView, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        write_csv_to(view, fh)
    return out


# -- the formats, one table for the CLI and the dashboard ----------------------------------------
@dataclass(frozen=True, slots=True)
class ExportFormat:
    """One way to export a run: ``python -m core export --<key> FILE`` and a dashboard download."""

    key: str
    label: str
    suffix: str
    mime: str
    text: Callable[[RunView], str]
    description: str

    def write(self, view: RunView, path: str | os.PathLike) -> Path:
        """Write the run to ``path`` (folders created); returns the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as fh:
            fh.write(self.text(view))
        return out


EXPORT_FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("json", "JSON", ".json", "application/json", json_text, "the whole run (see README)"),
    ExportFormat("csv", "CSV", ".csv", "text/csv", csv_text, "one row per frame and rank (and region)"),
    ExportFormat(
        "edl", "EDL", ".edl", "text/plain", edl_text, "CMX 3600 edit decision list, an event per segment"
    ),
    ExportFormat(
        "otio",
        "OTIO",
        ".otio",
        "application/json",
        otio_text,
        "OpenTimelineIO timeline, a marker per segment with its score",
    ),
    ExportFormat("vtt", "WebVTT", ".vtt", "text/vtt", vtt_text, "WebVTT chapters, a cue per segment"),
)
"""Every export format, in the order the CLI and the dashboard offer them."""
