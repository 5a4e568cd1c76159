"""core.media.writer: browser-playable H.264 MP4 writing."""

from __future__ import annotations

import av
import numpy as np
import pytest

from core.media.writer import VideoWriter


def test_writer_makes_browser_playable_h264(tmp_path):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=24) as w:
        for i in range(12):
            w.write(np.full((101, 161, 3), i * 10, np.uint8))  # odd sizes are rounded down
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264"
        assert s.codec_context.pix_fmt == "yuv420p"
        assert (s.width, s.height) == (160, 100)
        assert float(s.average_rate) == pytest.approx(24)
        assert sum(1 for _ in c.decode(s)) == 12
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", fps=0)


def test_writer_error_before_any_frame_leaves_no_file(tmp_path):
    path = tmp_path / "never.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, fps=10):
        raise RuntimeError("boom")
    assert not path.exists()
