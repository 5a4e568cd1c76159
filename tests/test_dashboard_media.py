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


def test_human_size():
    from dashboard.media import human_size

    assert human_size(512) == "512 bytes" and human_size(1_500_000) == "1.5 MB"
