"""core.media.demo: generated pictures and a video of them, for trying the tool with no files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import read_video
from core.errors import InvalidArgumentError
from core.media.demo import write_demo_media
from core.media.images import load_image


def test_demo_media_are_pictures_and_a_playable_video_of_them(tmp_path):
    media = write_demo_media(tmp_path / "demo", images=2, shot_frames=4, fps=5, size=(64, 96))
    assert [p.name for p in media.images] == ["picture-1.png", "picture-2.png"]
    assert all(p.parent == media.images_dir for p in media.images)
    pictures = [load_image(p).rgb for p in media.images]
    assert pictures[0].shape == (64, 96, 3) and not np.array_equal(pictures[0], pictures[1])
    facts, frames = read_video(media.video)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p" and facts["size"] == (96, 64)
    assert len(frames) == media.frame_count == 4 * 3

    # picture 1, noise, picture 2: the shots look like their pictures, the noise like neither
    def near(frame, picture):  # mean colour difference of 4×6 thumbnails (the camera pans)
        small = [cv2.resize(x, (6, 4), interpolation=cv2.INTER_AREA).astype(int) for x in (frame, picture)]
        return float(np.abs(small[0] - small[1]).mean())

    assert near(frames[0], pictures[0]) < 25 and near(frames[-1], pictures[1]) < 25
    assert all(near(frames[i], p) > 35 for i in range(4, 8) for p in pictures)


def test_demo_media_are_the_same_every_time(tmp_path):
    a = write_demo_media(tmp_path / "a", images=1, shot_frames=2, size=(48, 48))
    b = write_demo_media(tmp_path / "b", images=1, shot_frames=2, size=(48, 48))
    assert a.images[0].read_bytes() == b.images[0].read_bytes()


@pytest.mark.parametrize("bad", [{"images": 0}, {"shot_frames": 1}, {"fps": 0}, {"size": (16, 16)}])
def test_demo_media_refuse_options_out_of_range(tmp_path, bad):
    with pytest.raises(InvalidArgumentError):
        write_demo_media(tmp_path, **bad)
