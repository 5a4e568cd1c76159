"""core.visual.layer_video: the layer evolution of an image (H.264 checked with PyAV, GIF)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from conftest import pattern_image, read_video
from core.visual.layer_video import render_layers


def test_layer_video_has_one_labelled_frame_per_layer(extractor, tmp_path):
    events = []
    result = render_layers(
        extractor,
        pattern_image(0, (240, 320)),
        tmp_path / "l" / "layers.mp4",
        panel_size=112,
        gif=True,
        progress=events.append,
    )
    facts, frames = read_video(result.path)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p"
    assert facts["frames"] == len(frames) == result.frames == extractor.num_layers == 3
    assert facts["size"] == (224, 112) == (result.width, result.height)  # image | map, 112 px each
    assert facts["rate"] == 2
    assert not np.allclose(frames[0][:, 112:], frames[-1][:, 112:], atol=10)  # the layers differ
    assert events[-1].done == events[-1].total == 3
    assert result.gif == tmp_path / "l" / "layers.gif"
    with Image.open(result.gif) as gif:
        assert gif.n_frames == 3 and gif.size == (224, 112) and gif.info["duration"] == 500


def test_layer_video_in_full_mode_without_the_image(extractor, tmp_path):
    result = render_layers(
        extractor,
        pattern_image(1, (360, 640)),
        tmp_path / "full.mp4",
        mode="full",
        short_side=224,
        panel_size=112,
        with_image=False,
        fps=4,
    )
    facts, _ = read_video(result.path)
    assert facts["size"] == (196, 112)  # 16×28 patches (224 × 392), aspect kept
    assert facts["rate"] == 4 and result.gif is None
