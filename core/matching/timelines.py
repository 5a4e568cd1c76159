"""A run's segments for editors and players: CMX 3600 EDL, OpenTimelineIO and WebVTT chapters.

Every format describes the segments of a :class:`~core.matching.runs.RunView` (so of the
threshold the user chose) on the video's own timeline: a segment runs from its first matched
frame to the end of its last one. Text that comes from file names goes through
:func:`safe_text` first, so a name with a newline, a tab or another control character cannot
break a line-based format or add lines of its own.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.matching.runs import RunView
    from db import Segment


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
EDL_TITLE_CHARS = 70
EDL_REEL = "AX"  # CMX 3600's name for an auxiliary source: the video itself


def safe_text(text: str, limit: int | None = None) -> str:
    """One line of text: control characters (newlines, tabs, escapes, line separators) become
    spaces, runs of spaces one; cut to ``limit`` characters."""
    flat = _CONTROL.sub(" ", unicodedata.normalize("NFC", str(text)))
    flat = " ".join(flat.split())
    return flat[:limit] if limit is not None else flat


def _ascii(text: str) -> str:
    """EDL text: ASCII only (accents dropped, other characters as ``?``), as CMX readers expect."""
    folded = unicodedata.normalize("NFKD", text)
    return "".join(ch if ch.isascii() else ("" if unicodedata.combining(ch) else "?") for ch in folded)


def _fps(view: RunView) -> float:
    return view.video.fps if view.video.fps and view.video.fps > 0 else 25.0


def _segment_label(view: RunView, seg: Segment) -> str:
    return safe_text(view.image_name(seg.image_id))


# -- CMX 3600 EDL ---------------------------------------------------------------------------------
def timecode(frame: int, fps: float) -> str:
    """``HH:MM:SS:FF`` of a frame number, non-drop-frame at the nominal rate (29.97 counts as 30)."""
    rate = max(1, round(fps))
    frame = max(0, int(frame))
    ff = frame % rate
    seconds = frame // rate
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{ff:02d}"


def edl_text(view: RunView) -> str:
    """The segments as CMX 3600 events on the video's timeline (source = record times).

    Each event cuts the video from the segment's first frame to the frame after its last; the
    image is named in a ``* LOC:`` marker (read by DaVinci Resolve and Avid) and a comment.
    """
    fps = _fps(view)
    title = _ascii(safe_text(f"webssl-lens run {view.run.id} {Path(view.video.path).name}", EDL_TITLE_CHARS))
    lines = [f"TITLE: {title}", "FCM: NON-DROP FRAME", ""]
    clip = _ascii(safe_text(Path(view.video.path).name))
    for n, seg in enumerate(view.segments, start=1):
        tc_in, tc_out = timecode(seg.start_frame, fps), timecode(seg.end_frame + 1, fps)
        name = _ascii(_segment_label(view, seg))
        lines += [
            f"{n % 1000:03d}  {EDL_REEL:<8} V     C        {tc_in} {tc_out} {tc_in} {tc_out}",
            f"* FROM CLIP NAME: {clip}",
            f"* LOC: {tc_in} GREEN   {name}",
            f"* COMMENT: {name} peak {seg.peak_score:.3f} mean {seg.mean_score:.3f}",
            "",
        ]
    return "\n".join(lines)


# -- WebVTT chapters ------------------------------------------------------------------------------
def vtt_time(seconds: float) -> str:
    """``HH:MM:SS.mmm``."""
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def vtt_text(view: RunView) -> str:
    """The segments as WebVTT chapters (``<track kind="chapters">``), one cue per segment.

    Cue text is escaped (``&``, ``<``, ``>``) and kept on one line, so a file name cannot end
    a cue or start a new one.
    """
    lines = ["WEBVTT", "", f"NOTE webssl-lens run {view.run.id}, threshold {view.params.threshold:g}", ""]
    for n, seg in enumerate(view.segments, start=1):
        label = html.escape(_segment_label(view, seg), quote=False)
        lines += [
            f"segment-{n}",
            f"{vtt_time(seg.start_s)} --> {vtt_time(seg.end_s)}",
            f"{label} (peak {seg.peak_score:.2f})",
            "",
        ]
    return "\n".join(lines)


# -- OpenTimelineIO -------------------------------------------------------------------------------
OTIO_METADATA_KEY = "webssl_lens"


def otio_timeline(view: RunView):
    """An ``opentimelineio`` Timeline: one video track holding the video as one clip, with a
    marker per segment named after the image; the score is in the marker's metadata
    (``metadata["webssl_lens"]``: image, path, peak_score, mean_score, frames)."""
    import opentimelineio as otio

    fps = _fps(view)
    video = view.video
    duration = video.frame_count or (round(video.duration_s * fps) if video.duration_s else 0)
    if view.segments:
        duration = max(duration, max(s.end_frame for s in view.segments) + 1)
    name = safe_text(Path(video.path).name)
    clip = otio.schema.Clip(
        name=name,
        media_reference=otio.schema.ExternalReference(
            target_url=Path(video.path).as_uri() if Path(video.path).is_absolute() else video.path,
            available_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(0, fps), otio.opentime.RationalTime(duration, fps)
            ),
        ),
        source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, fps), otio.opentime.RationalTime(duration, fps)
        ),
    )
    for seg in view.segments:
        clip.markers.append(
            otio.schema.Marker(
                name=_segment_label(view, seg),
                marked_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(seg.start_frame, fps),
                    otio.opentime.RationalTime(seg.end_frame - seg.start_frame + 1, fps),
                ),
                color=otio.schema.MarkerColor.GREEN,
                metadata={
                    OTIO_METADATA_KEY: {
                        "image": _segment_label(view, seg),
                        "path": view.image_paths.get(seg.image_id),
                        "image_id": seg.image_id,
                        "peak_score": _finite(seg.peak_score),
                        "mean_score": _finite(seg.mean_score),
                        "frames": seg.frames,
                    }
                },
            )
        )
    track = otio.schema.Track(name="video", kind=otio.schema.TrackKind.Video)
    track.append(clip)
    timeline = otio.schema.Timeline(
        name=safe_text(f"webssl-lens run {view.run.id}: {name}"),
        metadata={
            OTIO_METADATA_KEY: {
                "run_id": view.run.id,
                "collection": view.run.collection_name,
                "threshold": view.params.threshold,
            }
        },
    )
    timeline.tracks.append(track)
    return timeline


def otio_text(view: RunView) -> str:
    """The timeline of :func:`otio_timeline` as OTIO JSON."""
    import opentimelineio as otio

    return otio.adapters.write_to_string(otio_timeline(view), "otio_json")


def _finite(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None
