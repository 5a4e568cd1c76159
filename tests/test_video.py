"""core.media.video: PyAV decoding: metadata, presentation times, rotation, bad files, single frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import pattern_image, write_video
from core.errors import VideoOpenError
from core.media.files import file_sha256
from core.media.video import DecodeReport, format_time, iter_frames, probe_video


@pytest.fixture
def ramp_video(tmp_path):
    frames = [np.full((120, 160, 3), i * 8, np.uint8) for i in range(30)]
    return write_video(tmp_path / "ramp.mp4", frames, fps=15)


def test_probe_reads_metadata(ramp_video):
    info = probe_video(ramp_video)
    assert info.fps == pytest.approx(15)
    assert info.frame_count == 30
    assert info.duration_s == pytest.approx(2.0, abs=0.07)
    assert (info.width, info.height) == (160, 120)
    assert info.codec == "h264"
    assert info.sha256 == file_sha256(ramp_video)
    assert info.size_bytes == ramp_video.stat().st_size


def test_frames_come_in_order_with_presentation_times(ramp_video):
    frames = list(iter_frames(ramp_video))
    assert [f.index for f in frames] == list(range(30))
    times = np.array([f.time_s for f in frames])
    np.testing.assert_allclose(times, np.arange(30) / 15, atol=1e-3)
    assert frames[0].rgb.shape == (120, 160, 3) and frames[0].rgb.dtype == np.uint8
    # content follows the ramp written (lossy codec: close, not exact)
    assert abs(int(frames[10].rgb.mean()) - 80) <= 3


def test_variable_frame_rate_times_are_real_timestamps(tmp_path):
    """Times come from pts, not index / fps."""
    path = tmp_path / "vfr.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    pts_ms = [0, 100, 150, 600, 700]
    for i, pts in enumerate(pts_ms):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), format="rgb24")
        frame.pts = pts
        frame.time_base = Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    times = [f.time_s for f in iter_frames(path)]
    np.testing.assert_allclose(times, np.array(pts_ms) / 1000, atol=2e-3)


def test_select_skips_conversion_and_max_frames_stops(ramp_video):
    picked = list(iter_frames(ramp_video, select=lambda i, t: i % 7 == 0))
    assert [f.index for f in picked] == [0, 7, 14, 21, 28]
    assert len(list(iter_frames(ramp_video, max_frames=5))) == 5


def test_size_option_scales_in_ffmpeg(ramp_video):
    frame = next(iter(iter_frames(ramp_video, size=(80, 60))))
    assert frame.rgb.shape == (60, 80, 3)


def test_rotated_video_is_returned_upright(tmp_path):
    path = tmp_path / "rot.mp4"
    img = pattern_image(1, (48, 64))
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.set_display_rotation(90)
    for _ in range(3):
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    info = probe_video(path)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (48, 64)
    frame = next(iter(iter_frames(path)))
    assert frame.rgb.shape == (64, 48, 3)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p, "file not found"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
        (lambda p: (p.write_text("this is not a video" * 50), p)[1], "not a video"),
    ],
)
def test_bad_files_get_a_clear_reason(tmp_path, make, reason):
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(VideoOpenError, match=reason):
        probe_video(path)
    with pytest.raises(VideoOpenError, match=reason):
        list(iter_frames(path))


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "sound.m4a"
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate = 8000
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with pytest.raises(VideoOpenError, match="no video stream"):
        probe_video(path)


def test_folder_is_not_a_video(tmp_path):
    with pytest.raises(VideoOpenError, match="folder"):
        probe_video(tmp_path)


def test_format_time():
    assert format_time(12.4) == "0:12.4"
    assert format_time(3725.25) == "1:02:05.2"
    assert format_time(float("nan")) == "?"


def test_read_frame_seeks_to_the_frame_shown_at_a_time(tmp_path):
    from core.media.video import read_frame

    frames_in = [np.full((48, 64, 3), i * 8, np.uint8) for i in range(30)]
    path = write_video(tmp_path / "seek.mp4", frames_in, fps=10)
    frames = list(iter_frames(path))
    for i in (0, 7, 15, 29):
        np.testing.assert_array_equal(read_frame(path, i, frames[i].time_s), frames[i].rgb)
    with pytest.raises(VideoOpenError, match="file not found"):
        read_frame(tmp_path / "gone.mp4", 0, 0.0)


# -- issue 9: what was decoded is reported, and frame numbers and times stay true -----------------------
def _moving(n: int):
    for i in range(n):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:] = (i * 3 % 256, i * 7 % 256, 100)
        frame[40:80, i % 120 : i % 120 + 40] = 255
        yield frame


@pytest.fixture
def long_clip(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4", _moving(300), fps=30)


def test_a_truncated_file_is_reported_as_ending_early(long_clip, tmp_path, caplog):
    cut = tmp_path / "cut.mp4"
    data = long_clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    report = DecodeReport()
    frames = list(iter_frames(cut, report=report))
    assert report.complete and report.expected == 300
    assert report.decoded == len(frames) < 250 and report.ended_early
    assert report.duration_s == pytest.approx(frames[-1].time_s + 1 / 30, abs=1e-6)
    assert any("ended early" in r.getMessage() and str(len(frames)) in r.getMessage() for r in caplog.records)
    full = DecodeReport()
    assert len(list(iter_frames(long_clip, report=full))) == 300 and not full.ended_early and full.lost == 0


def test_lost_frames_keep_later_frame_numbers_and_times(long_clip, tmp_path, caplog):
    broken = tmp_path / "broken.mp4"
    data = bytearray(long_clip.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 6000] = np.random.default_rng(2).integers(0, 256, 6000, dtype=np.uint8).tobytes()
    broken.write_bytes(bytes(data))
    report = DecodeReport()
    frames = list(iter_frames(broken, report=report))
    assert report.lost > 0 and report.decoded + report.lost == 300
    for frame in frames:  # a frame's number follows its timestamp, as in the intact file
        assert frame.index == round(frame.time_s * 30)
    assert any("lost" in r.getMessage() for r in caplog.records)


def test_variable_frame_rate_count_is_what_was_decoded(tmp_path):
    import av

    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        t = 0
        for i, rgb in enumerate(_moving(60)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += 33 if i % 3 else 133
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    info = probe_video(path)
    assert not info.frame_count_exact  # an estimate from duration × average rate
    report = DecodeReport()
    assert len(list(iter_frames(path, report=report))) == report.decoded == 60
    assert not report.ended_early and report.lost == 0  # no corruption: gaps in a VFR stream are not losses


def test_a_still_image_is_not_a_video(tmp_path):
    """The CLI used to match a JPEG as a one-frame video while the dashboard refused it: one rule."""
    from PIL import Image

    for name in ("still.jpg", "still.png"):
        path = tmp_path / name
        Image.fromarray(pattern_image(1)).save(path)
        with pytest.raises(VideoOpenError, match="still image, not a video"):
            probe_video(path)
        with pytest.raises(VideoOpenError, match="still image"):
            list(iter_frames(path))
