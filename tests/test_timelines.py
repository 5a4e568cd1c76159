"""core/matching/timelines.py: EDL, OpenTimelineIO and WebVTT exports of a run's segments.

The run is written through the db API (no model): two images, one of them with a file name
that carries a newline, a tab and markup, to show it cannot break the line-based formats.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import synthetic_run
from core.matching.timelines import edl_text, otio_text, safe_text, timecode, vtt_text, vtt_time

NASTY = "/photos/evil\nname\t<b>--> & co\x1b[31m.jpg"
FPS = 25.0


@pytest.fixture
def view(index):
    # astronaut.jpg matched in frames 10..39, the nasty name in frames 60..79 (25 fps)
    frames = np.arange(100)
    best = np.where(frames < 50, 0, 1).tolist()
    matched = ((frames >= 10) & (frames < 40)) | ((frames >= 60) & (frames < 80))
    view = synthetic_run(
        index, best, np.where(matched, 0.9, 0.1).tolist(), paths=("/photos/astronaut.jpg", NASTY)
    )
    assert [(s.start_frame, s.end_frame) for s in view.segments] == [(10, 39), (60, 79)]
    return view


EVENT = re.compile(r"^(\d{3})  (\S+)\s+V\s+C\s+(\S+) (\S+) (\S+) (\S+)$")


def parse_edl(text: str) -> list[dict]:
    """A small CMX 3600 reader: events with their in/out timecodes and comment lines."""
    events: list[dict] = []
    for line in text.splitlines():
        m = EVENT.match(line)
        if m:
            events.append(
                {"n": int(m[1]), "reel": m[2], "src": (m[3], m[4]), "rec": (m[5], m[6]), "notes": []}
            )
        elif line.startswith("* ") and events:
            events[-1]["notes"].append(line)
        elif line and not line.startswith(("TITLE:", "FCM:")):
            raise AssertionError(f"unexpected EDL line {line!r}")
    return events


def frames_of(tc: str, fps: int = 25) -> int:
    h, m, s, f = map(int, tc.split(":"))
    return ((h * 60 + m) * 60 + s) * fps + f


def test_edl_has_one_event_per_segment_with_frame_exact_timecodes(view):
    text = edl_text(view)
    assert text.startswith("TITLE: webssl-lens run") and "FCM: NON-DROP FRAME" in text
    events = parse_edl(text)
    assert [e["n"] for e in events] == [1, 2]
    # in = first matched frame, out = the frame after the last (exclusive), source = record
    assert [(frames_of(e["src"][0]), frames_of(e["src"][1])) for e in events] == [(10, 40), (60, 80)]
    assert all(e["src"] == e["rec"] and e["reel"] == "AX" for e in events)
    assert "* LOC: 00:00:00:10 GREEN   astronaut.jpg" in events[0]["notes"]
    assert any("peak 0.900" in n for n in events[0]["notes"])


def test_edl_survives_a_file_name_with_control_characters(view):
    events = parse_edl(edl_text(view))  # raises on any line the name would have added
    nasty = events[1]["notes"]
    assert len(nasty) == 3 and all(n.isascii() and n.isprintable() for n in nasty)
    assert any("name <b>--> & co [31m.jpg" in n for n in nasty)


def test_otio_reads_back_with_the_library(view):
    otio = pytest.importorskip("opentimelineio")
    timeline = otio.adapters.read_from_string(otio_text(view), "otio_json")
    (track,) = timeline.tracks
    (clip,) = track
    assert clip.media_reference.target_url == "file:///videos/talk.mp4"
    assert clip.source_range.duration.to_frames() == 100
    markers = list(clip.markers)
    assert [m.name for m in markers] == ["astronaut.jpg", safe_text("evil\nname\t<b>--> & co\x1b[31m.jpg")]
    first = markers[0]
    assert first.marked_range.start_time.to_frames() == 10
    assert first.marked_range.duration.to_frames() == 30  # frames 10..39
    assert first.marked_range.start_time.rate == FPS
    meta = first.metadata["webssl_lens"]
    assert meta["peak_score"] == pytest.approx(0.9) and meta["frames"] == 30
    assert meta["path"] == "/photos/astronaut.jpg"
    assert timeline.metadata["webssl_lens"]["threshold"] == 0.5


def test_vtt_chapters_are_one_cue_per_segment_and_escaped(view):
    text = vtt_text(view)
    assert text.startswith("WEBVTT\n\n")
    blocks = [b.split("\n") for b in text.strip().split("\n\n")[2:]]  # after the header and the NOTE
    assert [b[1] for b in blocks] == ["00:00:00.400 --> 00:00:01.600", "00:00:02.400 --> 00:00:03.200"]
    assert blocks[0][2] == "astronaut.jpg (peak 0.90)"
    # the nasty name stays on one line, its markup and arrow escaped
    assert len(blocks[1]) == 3 and "--&gt;" in blocks[1][2] and "&lt;b&gt;" in blocks[1][2]
    assert "&amp; co" in blocks[1][2] and "\x1b" not in text


def test_timecodes_and_times():
    assert timecode(0, 25) == "00:00:00:00"
    assert timecode(25 * 3661 + 7, 25) == "01:01:01:07"
    assert timecode(1800, 30000 / 1001) == "00:01:00:00"  # 29.97 counts frames at 30 (non-drop)
    assert vtt_time(3661.5) == "01:01:01.500"


def test_safe_text_keeps_one_line():
    assert safe_text("a\r\nb\tc\u2028d\x00e") == "a b c d e"
    assert safe_text("  spaced   out  ") == "spaced out"
    assert safe_text("long name", 4) == "long"
