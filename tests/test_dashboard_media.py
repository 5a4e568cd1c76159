"""dashboard.media: frames and sizes for display."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import VideoOpenError


def test_read_frame_seeks_to_the_right_frame(shots_video):
    from core.media.video import iter_frames
    from dashboard.media import read_frame

    frames = {f.index: f for f in iter_frames(shots_video.path)}
    for i in (0, 1, 13, 27, 39):
        got = read_frame(shots_video.path, i, frames[i].time_s, max_width=None)
        np.testing.assert_array_equal(got, frames[i].rgb)
    small = read_frame(shots_video.path, 5, frames[5].time_s, max_width=100)
    assert small.shape[1] == 100


def test_read_frame_of_a_missing_video(tmp_path):
    from dashboard.media import read_frame

    with pytest.raises(VideoOpenError, match="file not found"):
        read_frame(tmp_path / "gone.mp4", 0, 0.0)


def test_counts_are_shortened_to_fit_a_metric_card():
    from dashboard.media import short_count

    assert [short_count(n) for n in (0, 7, 9_999, 10_000, 12_345, 99_949, 999_499, 999_999)] == [
        "0", "7", "9,999", "10k", "12k", "100k", "999k", "1.0M"
    ]  # fmt: skip
    assert [short_count(n) for n in (1_000_000, 1_250_000, 216_000_000, 3_400_000_000)] == [
        "1.0M", "1.2M", "216M", "3.4B"
    ]  # fmt: skip


def test_human_size():
    from dashboard.media import human_size

    assert human_size(512) == "512 bytes" and human_size(1_500_000) == "1.5 MB"


def test_figure_files_are_named_after_the_image_and_mode():
    """The Explore figure used to download as a generic webssl-maps.png (issue 10)."""
    from dashboard.media import figure_name

    assert figure_name("poster.jpg", "full") == "poster-full-maps.png"
    assert figure_name("/x/../holiday photo.PNG", "crop") == "holiday_photo-crop-maps.png"
    assert figure_name("", "crop") == "image-crop-maps.png"


def test_grid_thumbnails_are_squares_and_names_fit_a_line():
    """Uneven thumbnail heights misaligned the Browse grid's captions and buttons (issue 10)."""
    import io

    from PIL import Image

    from dashboard.media import THUMB_BACKGROUND, short_name, square_jpeg, square_thumbnail

    for size in ((40, 200), (200, 40), (64, 64)):
        buf = io.BytesIO()
        Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG")
        square = square_thumbnail(buf.getvalue(), 128)
        assert square.shape == (128, 128, 3)
    assert (square_thumbnail(None, 32) == THUMB_BACKGROUND).all()
    assert (square_thumbnail(b"junk", 32) == THUMB_BACKGROUND).all()
    # the grid sends them as JPEG: the same square, no PNG encoding per rerun
    buf = io.BytesIO()
    Image.new("RGB", (40, 200), (200, 30, 30)).save(buf, "JPEG")
    sent = Image.open(io.BytesIO(square_jpeg(buf.getvalue(), 128)))
    assert sent.format == "JPEG" and sent.size == (128, 128)
    want = square_thumbnail(buf.getvalue(), 128).astype(int)
    assert np.abs(np.asarray(sent.convert("RGB")).astype(int) - want).mean() < 3
    assert short_name("a" * 20 + ".jpg") == "a" * 20 + ".jpg"
    long = short_name("holiday-" * 10 + "final.jpg", 28)
    assert len(long) == 28 and long.startswith("holiday-") and long.endswith("final.jpg")
